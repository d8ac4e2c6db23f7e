# bash completion for sluice(1).
#
# Installed by `make install` as share/bash-completion/completions/sluice,
# where bash-completion loads it the first time `sluice` is completed; or
# `source completions/sluice.bash` by hand. It needs nothing from
# bash-completion. A program of your own built on sl_main() takes the
# same command line: `complete -F _sluice hello`.
#
# Completes the subcommands, the dlq verbs, the options that apply to
# each subcommand (and verb), file names after -c/--config, and `none`
# after --metrics. It never asks Redis, so stream names, groups and
# dead-letter IDs are not completed. The options and their values follow
# framework/cli.c: tests/man/check.sh compares the two.

# _sluice_words: fills _sluice_w (the words of the line up to the cursor)
# and _sluice_cw (the index of the current one) from COMP_WORDS, with the
# words that bash split at ':' and '=' (COMP_WORDBREAKS) glued back, so
# that `--metrics 127.0.0.1:9121` or `--count=5` is one word again.
_sluice_words()
{
    local i w glue=0
    _sluice_w=()
    _sluice_cw=-1
    for ((i = 0; i <= COMP_CWORD && i < ${#COMP_WORDS[@]}; i++)); do
        w=${COMP_WORDS[i]}
        if ((${#_sluice_w[@]} > 0)) && { ((glue)) || [[ $w =~ ^[:=]+$ ]]; }; then
            _sluice_w[${#_sluice_w[@]} - 1]+=$w
        else
            _sluice_w+=("$w")
        fi
        glue=0
        [[ $w =~ ^[:=]+$ ]] && glue=1
    done
    ((COMP_CWORD >= ${#COMP_WORDS[@]})) && _sluice_w+=("")
    _sluice_cw=$((${#_sluice_w[@]} - 1))
}

# _sluice_reply WORDLIST CUR: the words of WORDLIST that start with CUR.
_sluice_reply()
{
    mapfile -t COMPREPLY < <(compgen -W "$1" -- "$2")
}

# _sluice: the completion function (complete -F).
_sluice()
{
    local -a _sluice_w
    local _sluice_cw cur prev i w cmd="" verb="" dashdash=0 opts
    local value_opts="-c --config --redis --workers --metrics --idle --count --watch --after --data --code --older-than --listen --stream"
    local cmds="run pending stats workers dlq enqueue acl web health"
    local common="-c --config --redis --help"

    COMPREPLY=()
    _sluice_words
    cur=${_sluice_w[_sluice_cw]}
    prev=""
    ((_sluice_cw > 0)) && prev=${_sluice_w[_sluice_cw - 1]}

    # The subcommand and the dlq verb: the first two positionals, with
    # every option's value skipped (options may come first).
    for ((i = 1; i < _sluice_cw; i++)); do
        w=${_sluice_w[i]}
        if ((!dashdash)); then
            case $w in
            --) dashdash=1; continue ;;
            -c | --config | --redis | --workers | --metrics | --idle | --count | --watch | \
            --after | --data | --code | --older-than | --listen | --stream)
                ((i++)); continue ;;
            -?*) continue ;;
            esac
        fi
        if [[ -z $cmd ]]; then
            cmd=$w
        elif [[ ($cmd == dlq || $cmd == help) && -z $verb ]]; then
            verb=$w
        fi
    done

    if ((!dashdash)) && [[ " $value_opts " == *" $prev "* ]]; then
        case $prev in
        -c | --config)
            # compopt exists only while bash is completing.
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            ;;
        --metrics) _sluice_reply "none" "$cur" ;;
        esac
        return 0
    fi

    if ((!dashdash)) && [[ $cur == -* ]]; then
        case $cmd in
        "") opts="$common --version" ;;
        run) opts="$common --workers --metrics" ;;
        pending) opts="$common --idle --count --json" ;;
        stats) opts="$common --json --watch" ;;
        workers) opts="$common --json" ;;
        dlq)
            case $verb in
            list) opts="$common --after --count --json" ;;
            replay) opts="$common --all --data --json" ;;
            purge) opts="$common --code --older-than --yes --json" ;;
            show) opts="$common --json" ;;
            *) opts="$common --after --count --all --data --code --older-than --yes --json" ;;
            esac
            ;;
        enqueue) opts="$common --json" ;;
        health) opts="$common --metrics" ;;
        web) opts="$common --listen --allow-writes --stream" ;;
        *) opts="$common" ;;
        esac
        _sluice_reply "$opts" "$cur"
    elif [[ -z $cmd ]]; then
        _sluice_reply "$cmds" "$cur"
    elif [[ $cmd == help && -z $verb ]]; then
        _sluice_reply "$cmds" "$cur"
    elif [[ $cmd == dlq && -z $verb ]]; then
        _sluice_reply "list show replay purge" "$cur"
    fi
    return 0
}

complete -F _sluice sluice
