# sidekiq_job.rb -- the no-op job class of `make bench-peers`, loaded by
# `sidekiq -r` (the worker) and by sidekiq_fill.rb (the producer).
# Sidekiq reads the server from REDIS_URL.
require 'sidekiq'

# redis-rb 4.8 warns on every SADD Sidekiq 6.4 sends; the integer reply
# it will return is what Sidekiq expects anyway.
Redis.sadd_returns_boolean = false if Redis.respond_to?(:sadd_returns_boolean=)

# Does nothing with its argument: the benchmark measures the framework.
class NoopJob
  include Sidekiq::Worker

  def perform(_data); end
end
