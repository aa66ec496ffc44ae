//! `completions bash|zsh|fish`: shell completion scripts for commands, aliases, flags, toxic
//! types, and proxy names (read from the server with `list`, honouring `-h`).

use crate::context::Outcome;

const BASH: &str = r#"# bash completion for {prog}
# Install: {prog} completions bash > /etc/bash_completion.d/{prog}
#      or: echo 'source <({prog} completions bash)' >> ~/.bashrc
_{fn}_proxies() {
    "${COMP_WORDS[0]}" ${_{fn}_host:+-h "$_{fn}_host"} list 2>/dev/null | cut -f1
}

_{fn}() {
    local cur prev word i cmd="" sub="" words=""
    local _{fn}_host=""
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        if [[ -z $cmd ]]; then
            case "$word" in
                -h|--host|-host) _{fn}_host="${COMP_WORDS[i+1]}"; ((i++)); continue ;;
                --host=*|-host=*|-h=*|--h=*) _{fn}_host="${word#*=}"; continue ;;
                -*) continue ;;
            esac
            cmd="$word"
        elif [[ -z $sub && ( $cmd == toxic || $cmd == t ) && $word != -* ]]; then
            sub="$word"
        fi
    done

    if [[ -z $cmd ]]; then
        case "$prev" in
            -h|--host|-host) return 0 ;;
        esac
        if [[ $cur == -* ]]; then
            words="--host -h --help --version -v"
        else
            words="list inspect create toggle delete toxic help completions"
        fi
    else
        case "$cmd" in
            list|l|li|ls)
                case "$prev" in -o|--output) words="text json" ;; *) words="--output -o --help" ;; esac ;;
            inspect|i|ins)
                case "$prev" in
                    -o|--output) words="text json" ;;
                    *) if [[ $cur == -* ]]; then words="--output -o --help"; else words="$(_{fn}_proxies)"; fi ;;
                esac ;;
            toggle|tog|delete|d)
                if [[ $cur == -* ]]; then words="--help"; else words="$(_{fn}_proxies)"; fi ;;
            create|c|new)
                case "$prev" in
                    -l|--listen|-u|--upstream) return 0 ;;
                esac
                [[ $cur == -* ]] && words="--listen -l --upstream -u --help" ;;
            toxic|t)
                if [[ -z $sub ]]; then
                    words="add update remove help"
                else
                    case "$prev" in
                        -t|--type) words="{types}" ;;
                        -n|--toxicName|-a|--attribute|--tox|--toxicity) return 0 ;;
                        *)
                            if [[ $cur == -* ]]; then
                                case "$sub" in
                                    add|a) words="--toxicName -n --type -t --toxicity --tox --attribute -a --upstream -u --downstream -d --help" ;;
                                    update|u) words="--toxicName -n --toxicity --tox --attribute -a --help" ;;
                                    *) words="--toxicName -n --help" ;;
                                esac
                            elif [[ $sub != help && $sub != h ]]; then
                                words="$(_{fn}_proxies)"
                            fi ;;
                    esac
                fi ;;
            help|h) words="list inspect create toggle delete toxic toxics completions" ;;
            completions) words="bash zsh fish" ;;
        esac
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}

complete -F _{fn} {prog}
"#;

const ZSH: &str = r#"#compdef {prog}
# zsh completion for {prog}
# Install: {prog} completions zsh > "${fpath[1]}/_{prog}"
#      or: echo 'source <({prog} completions zsh)' >> ~/.zshrc

_{fn}_proxies() {
    local -a names host
    local i
    for ((i = 2; i < CURRENT; i++)); do
        case ${words[i]} in
            -h|--host|-host) host=(-h ${words[i+1]}); break ;;
            -*) ;;
            *) break ;;
        esac
    done
    names=(${(f)"$(${words[1]} $host list 2>/dev/null | cut -f1)"})
    compadd -a names
}

_{fn}() {
    local -a commands types
    local i cmd sub prev cur
    commands=(
        'list:list all proxies'
        'inspect:inspect a single proxy'
        'create:create a new proxy'
        'toggle:toggle enabled status on a proxy'
        'delete:delete a proxy'
        'toxic:add, remove or update a toxic'
        'help:show help for a command'
        'completions:print a shell completion script'
    )
    types=({types})
    for ((i = 2; i < CURRENT; i++)); do
        case ${words[i]} in
            -h|--host|-host) [[ -z $cmd ]] && (( i++ )) ;;
            -*) ;;
            *)
                if [[ -z $cmd ]]; then
                    cmd=${words[i]}
                elif [[ -z $sub && ( $cmd == toxic || $cmd == t ) ]]; then
                    sub=${words[i]}
                fi ;;
        esac
    done
    prev=${words[CURRENT-1]}
    cur=${words[CURRENT]}

    if [[ -z $cmd ]]; then
        case $prev in
            -h|--host|-host) return ;;
        esac
        if [[ $cur == -* ]]; then
            compadd -- --host -h --help --version -v
        else
            _describe -t commands 'command' commands
        fi
        return
    fi
    case $cmd in
        list|l|li|ls)
            case $prev in
                -o|--output) compadd text json ;;
                *) compadd -- --output -o --help ;;
            esac ;;
        inspect|i|ins)
            case $prev in
                -o|--output) compadd text json ;;
                *) if [[ $cur == -* ]]; then compadd -- --output -o --help; else _{fn}_proxies; fi ;;
            esac ;;
        toggle|tog|delete|d)
            if [[ $cur == -* ]]; then compadd -- --help; else _{fn}_proxies; fi ;;
        create|c|new)
            case $prev in
                -l|--listen|-u|--upstream) return ;;
            esac
            if [[ $cur == -* ]]; then compadd -- --listen -l --upstream -u --help; fi ;;
        toxic|t)
            if [[ -z $sub ]]; then
                compadd add update remove help
                return
            fi
            case $prev in
                -t|--type) compadd -a types; return ;;
                -n|--toxicName|-a|--attribute|--tox|--toxicity) return ;;
            esac
            if [[ $cur == -* ]]; then
                case $sub in
                    add|a) compadd -- --toxicName -n --type -t --toxicity --tox --attribute -a --upstream -u --downstream -d --help ;;
                    update|u) compadd -- --toxicName -n --toxicity --tox --attribute -a --help ;;
                    *) compadd -- --toxicName -n --help ;;
                esac
            else
                _{fn}_proxies
            fi ;;
        help|h) _describe -t commands 'command' commands ;;
        completions) compadd bash zsh fish ;;
    esac
}

if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
    _{fn} "$@"
else
    compdef _{fn} {prog}
fi
"#;

const FISH: &str = r#"# fish completion for {prog}
# Install: {prog} completions fish > ~/.config/fish/completions/{prog}.fish

function __{fn}_proxies
    set -l tokens (commandline -opc)
    set -l host
    set -l n (count $tokens)
    for i in (seq 2 $n)
        switch $tokens[$i]
            case -h --host -host
                if test $i -lt $n
                    set host -h $tokens[(math $i + 1)]
                end
                break
        end
    end
    $tokens[1] $host list 2>/dev/null | cut -f1
end

set -l __{fn}_cmds list l li ls inspect i ins create c new toggle tog delete d toxic t help h completions
set -l __{fn}_toxic_cmds add a update u remove r delete d
set -l __{fn}_top "not __fish_seen_subcommand_from $__{fn}_cmds"
set -l __{fn}_toxic "__fish_seen_subcommand_from toxic t"
set -l __{fn}_add "__fish_seen_subcommand_from toxic t; and __fish_seen_subcommand_from add a"
set -l __{fn}_update "__fish_seen_subcommand_from toxic t; and __fish_seen_subcommand_from update u"
set -l __{fn}_remove "__fish_seen_subcommand_from toxic t; and __fish_seen_subcommand_from remove r delete d"

complete -c {prog} -f
complete -c {prog} -n $__{fn}_top -s h -l host -x -d 'toxiproxy host to connect to'
complete -c {prog} -n $__{fn}_top -l help -d 'show help'
complete -c {prog} -n $__{fn}_top -s v -l version -d 'print the version'
complete -c {prog} -n $__{fn}_top -a list -d 'list all proxies'
complete -c {prog} -n $__{fn}_top -a inspect -d 'inspect a single proxy'
complete -c {prog} -n $__{fn}_top -a create -d 'create a new proxy'
complete -c {prog} -n $__{fn}_top -a toggle -d 'toggle enabled status on a proxy'
complete -c {prog} -n $__{fn}_top -a delete -d 'delete a proxy'
complete -c {prog} -n $__{fn}_top -a toxic -d 'add, remove or update a toxic'
complete -c {prog} -n $__{fn}_top -a help -d 'show help for a command'
complete -c {prog} -n $__{fn}_top -a completions -d 'print a shell completion script'

complete -c {prog} -n "__fish_seen_subcommand_from list l li ls inspect i ins" -s o -l output -x -a 'text json' -d 'output format'
complete -c {prog} -n "__fish_seen_subcommand_from inspect i ins toggle tog delete d; and not __fish_seen_subcommand_from toxic t" -a '(__{fn}_proxies)'
complete -c {prog} -n "__fish_seen_subcommand_from create c new" -s l -l listen -x -d 'proxy will listen on this address'
complete -c {prog} -n "__fish_seen_subcommand_from create c new" -s u -l upstream -x -d 'proxy will forward to this address'
complete -c {prog} -n "__fish_seen_subcommand_from completions" -a 'bash zsh fish'

complete -c {prog} -n "$__{fn}_toxic; and not __fish_seen_subcommand_from $__{fn}_toxic_cmds" -a 'add' -d 'add a new toxic'
complete -c {prog} -n "$__{fn}_toxic; and not __fish_seen_subcommand_from $__{fn}_toxic_cmds" -a 'update' -d 'update an enabled toxic'
complete -c {prog} -n "$__{fn}_toxic; and not __fish_seen_subcommand_from $__{fn}_toxic_cmds" -a 'remove' -d 'remove an enabled toxic'
complete -c {prog} -n "$__{fn}_toxic; and __fish_seen_subcommand_from $__{fn}_toxic_cmds" -a '(__{fn}_proxies)'
complete -c {prog} -n "$__{fn}_toxic; and __fish_seen_subcommand_from $__{fn}_toxic_cmds" -s n -l toxicName -x -d 'name of the toxic'
complete -c {prog} -n $__{fn}_add -s t -l type -x -a '{types}' -d 'type of toxic'
complete -c {prog} -n $__{fn}_add -l toxicity -l tox -x -d 'toxicity, 0 to 1'
complete -c {prog} -n $__{fn}_update -l toxicity -l tox -x -d 'toxicity, 0 to 1'
complete -c {prog} -n $__{fn}_add -s a -l attribute -x -d 'toxic attribute key=value'
complete -c {prog} -n $__{fn}_update -s a -l attribute -x -d 'toxic attribute key=value'
complete -c {prog} -n $__{fn}_add -s u -l upstream -d 'add toxic to upstream'
complete -c {prog} -n $__{fn}_add -s d -l downstream -d 'add toxic to downstream'
complete -c {prog} -n $__{fn}_remove -l help -d 'show help'
"#;

/// A shell identifier made from the program name (`toxiproxy-cli` → `toxiproxy_cli`).
fn function_name(prog: &str) -> String {
    prog.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The toxic type names, space-separated, from the library's catalog.
fn toxic_types() -> String {
    toxi::toxics::type_names().collect::<Vec<_>>().join(" ")
}

/// The completion script for `shell`.
pub fn script(prog: &str, shell: &str) -> Option<String> {
    let template = match shell {
        "bash" => BASH,
        "zsh" => ZSH,
        "fish" => FISH,
        _ => return None,
    };
    Some(
        template
            .replace("{prog}", prog)
            .replace("{fn}", &function_name(prog))
            .replace("{types}", &toxic_types()),
    )
}

/// `completions <shell>`.
pub fn run(prog: &str, shell: &str) -> Outcome {
    if shell.is_empty() {
        return Outcome::fail(format!(
            "Shell name is required: {prog} completions bash|zsh|fish\n"
        ));
    }
    match script(prog, shell) {
        Some(s) => Outcome::print(s),
        None => Outcome::fail(format!("Unknown shell '{shell}': use bash, zsh or fish.\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_name_the_program() {
        let bash = script("toxiproxy-cli", "bash").unwrap();
        assert!(bash.contains("complete -F _toxiproxy_cli toxiproxy-cli\n"));
        assert!(!bash.contains("{fn}") && !bash.contains("{prog}"));
        let zsh = script("toxi", "zsh").unwrap();
        assert!(zsh.starts_with("#compdef toxi\n"));
        let fish = script("toxi", "fish").unwrap();
        assert!(fish.contains("complete -c toxi -f\n"));
        assert!(script("toxi", "tcsh").is_none());
    }

    #[test]
    fn errors() {
        assert_eq!(run("toxi", "").code, 1);
        assert_eq!(
            run("toxi", "tcsh").stderr,
            "Unknown shell 'tcsh': use bash, zsh or fish.\n\n"
        );
    }
}
