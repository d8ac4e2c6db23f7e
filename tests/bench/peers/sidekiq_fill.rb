# sidekiq_fill.rb N -- fills Sidekiq's default queue with N NoopJobs
# through Sidekiq::Client.push_bulk, 1,000 per call (the chunk size
# Sidekiq's docs advise), each job's argument the same ~150-byte object
# the other systems carry.
require_relative 'sidekiq_job'

n = Integer(ARGV.fetch(0))
pad = 'x' * 96
(0...n).each_slice(1000) do |slice|
  args = slice.map do |i|
    [{ 'order_id' => format('o-%07d', i), 'user_id' => format('u-%05d', i % 10_000),
       'amount_cents' => 100 + i % 9900, 'pad' => pad }]
  end
  Sidekiq::Client.push_bulk('class' => NoopJob, 'args' => args)
end
