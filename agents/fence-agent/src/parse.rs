//! Reading options from the command line (getopt, GNU style) or from stdin `key=value` lines,
//! following fencing.py's `_parse_input_cmdline` / `_parse_input_stdin`.
//!
//! Deliberate deviations (safer, documented in the crate README section of the report):
//! - a stdin line without `=`, or whose name contains spaces or characters no option name
//!   has, is a hard error (fencing.py warns and goes on with the default action, `reboot`);
//! - `option=` is accepted as the deprecated synonym of `action` that FenceAgentAPI.md
//!   documents (fencing.py ignores it and reboots);
//! - warnings about unknown keys show the key only, never the value (it might be a secret).

use std::collections::BTreeMap;

use thiserror::Error;

use crate::param::{lookup, Param, ParamKind};

/// Where the options came from: fencing.py reads exactly one of the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    CommandLine,
    Stdin,
}

/// Options as read, before any validation. Keys are canonical parameter names; flags hold
/// `"1"` or `"0"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub source: Source,
    pub values: BTreeMap<&'static str, String>,
    /// Number of `-v` on the command line, or 1 for `verbose=1` on stdin.
    pub verbose_count: u32,
    /// Non-fatal problems, to be logged at WARNING once logging is set up.
    pub warnings: Vec<String>,
}

impl Drop for Parsed {
    /// The values include the password and keys as given: zero them.
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for v in self.values.values_mut() {
            v.zeroize();
        }
    }
}

impl Parsed {
    fn new(source: Source) -> Parsed {
        Parsed {
            source,
            values: BTreeMap::new(),
            verbose_count: 0,
            warnings: Vec::new(),
        }
    }
}

/// A fatal problem in the input: the agent reports it and exits 1 without touching the device.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("Parse error: option {0} not recognized")]
    UnknownOption(String),
    #[error("Parse error: option {0} not a unique prefix")]
    AmbiguousOption(String),
    #[error("Parse error: option {0} requires argument")]
    MissingArgument(String),
    #[error("Parse error: option {0} must not have an argument")]
    UnexpectedArgument(String),
    #[error("Parse error: command-line arguments must be valid UTF-8")]
    NotUtf8,
    #[error("Parser error: option -n/--plug is not recognized")]
    PlugWithoutPortAsIp,
    #[error("Parse error: stdin must be valid UTF-8 text of key=value lines")]
    StdinNotUtf8,
    #[error("Parse error: stdin line {line}: {reason}")]
    MalformedLine { line: usize, reason: String },
}

const TRUE_WORDS: [&str; 4] = ["1", "yes", "on", "true"];
const FALSE_WORDS: [&str; 4] = ["0", "no", "off", "false"];

/// Interpret a boolean word as fencing.py does (`1|yes|on|true`, `0|no|off|false`, any case).
pub fn parse_bool_word(value: &str) -> Option<bool> {
    let v = value.to_ascii_lowercase();
    if TRUE_WORDS.contains(&v.as_str()) {
        Some(true)
    } else if FALSE_WORDS.contains(&v.as_str()) {
        Some(false)
    } else {
        None
    }
}

fn has_param(params: &[Param], name: &str) -> bool {
    params.iter().any(|p| p.name == name)
}

/// Parse command-line arguments (without argv[0]) like Python's `getopt.gnu_getopt`:
/// options and operands may be mixed, `--opt=value` or `--opt value`, unique prefixes of long
/// options, clustered short options (`-vvv`, `-ovalue`), `--` ends the options.
pub fn parse_args(params: &[Param], args: &[String]) -> Result<Parsed, ParseError> {
    let mut out = Parsed::new(Source::CommandLine);
    let mut unused: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            unused.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, inline_value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let param = find_long(params, name)?;
            let shown = format!("--{}", param.long_option());
            let value = if param.kind.takes_value() {
                match inline_value {
                    Some(v) => v,
                    None => {
                        let v = args
                            .get(i)
                            .ok_or_else(|| ParseError::MissingArgument(shown.clone()))?;
                        i += 1;
                        v.clone()
                    }
                }
            } else {
                if inline_value.is_some() {
                    return Err(ParseError::UnexpectedArgument(shown));
                }
                "1".to_string()
            };
            store_cli(&mut out, param, value);
        } else if arg.len() > 1 && arg.starts_with('-') {
            let chars: Vec<char> = arg[1..].chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                k += 1;
                let param = params
                    .iter()
                    .find(|p| p.short == Some(c))
                    .ok_or_else(|| ParseError::UnknownOption(format!("-{c}")))?;
                if param.kind.takes_value() {
                    let rest: String = chars[k..].iter().collect();
                    let value = if !rest.is_empty() {
                        rest
                    } else {
                        let v = args
                            .get(i)
                            .ok_or_else(|| ParseError::MissingArgument(format!("-{c}")))?;
                        i += 1;
                        v.clone()
                    };
                    store_cli(&mut out, param, value);
                    break;
                }
                store_cli(&mut out, param, "1".to_string());
            }
        } else {
            unused.push(arg.clone());
        }
    }
    if !unused.is_empty() {
        out.warnings
            // Counted, never echoed: a stray operand may be a password (`-P hunter2`, where
            // -P is lanplus and takes no value).
            .push(format!(
                "Unused arguments on command line: {} (not shown: they may hold a secret)",
                unused.len()
            ));
    }
    // fencing.py: on the command line, a plug is only meaningful together with --port-as-ip.
    if has_param(params, "port_as_ip")
        && out.values.contains_key("plug")
        && out.values.get("port_as_ip").map(String::as_str) != Some("1")
    {
        return Err(ParseError::PlugWithoutPortAsIp);
    }
    Ok(out)
}

fn find_long<'a>(params: &'a [Param], name: &str) -> Result<&'a Param, ParseError> {
    if let Some(p) = params.iter().find(|p| p.long_option() == name) {
        return Ok(p);
    }
    let candidates: Vec<&Param> = if name.is_empty() {
        Vec::new()
    } else {
        params
            .iter()
            .filter(|p| p.long_option().starts_with(name))
            .collect()
    };
    match candidates.len() {
        0 => Err(ParseError::UnknownOption(format!("--{name}"))),
        1 => Ok(candidates[0]),
        _ => Err(ParseError::AmbiguousOption(format!("--{name}"))),
    }
}

fn store_cli(out: &mut Parsed, param: &Param, value: String) {
    if param.name == "verbose" {
        out.verbose_count += 1;
    }
    out.values.insert(param.name, value);
}

/// Whether `name` looks like an option name at all (what Pacemaker can send).
fn is_plausible_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

/// Parse stdin `key=value` lines as fencing.py does (see the module doc for deviations).
pub fn parse_stdin(params: &[Param], input: &[u8]) -> Result<Parsed, ParseError> {
    let text = std::str::from_utf8(input).map_err(|_| ParseError::StdinNotUtf8)?;
    let mut out = Parsed::new(Source::Stdin);
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(ParseError::MalformedLine {
                line: line_no,
                reason: "expected key=value (no '=' found)".to_string(),
            });
        };
        if !is_plausible_name(name) {
            let trimmed = name.trim();
            let reason = if is_plausible_name(trimmed) && trimmed != name {
                format!("no spaces are allowed around '=' (key '{trimmed}')")
            } else {
                "the key is not a valid option name".to_string()
            };
            return Err(ParseError::MalformedLine {
                line: line_no,
                reason,
            });
        }
        let value = strip_one_quote_pair(value);
        let param = match lookup(params, name) {
            Some(p) => p,
            None if name == "option" => match lookup(params, "action") {
                Some(p) => p,
                None => continue,
            },
            None if name == "nodename" => continue,
            None => {
                out.warnings
                    .push(format!("Parse error: Ignoring unknown option '{name}'"));
                continue;
            }
        };
        if param.kind == ParamKind::Flag {
            match parse_bool_word(value) {
                Some(b) => {
                    out.values
                        .insert(param.name, if b { "1" } else { "0" }.to_string());
                }
                None => out.warnings.push(format!(
                    "Parse error: Ignoring option '{name}' because it does not have value"
                )),
            }
        } else {
            out.values.insert(param.name, value.to_string());
        }
    }
    if out.values.get("verbose").map(String::as_str) == Some("1") {
        out.verbose_count = 1;
    }
    Ok(out)
}

/// fencing.py removes one pair of surrounding double quotes (`^"(.*)"$`).
fn strip_one_quote_pair(value: &str) -> &str {
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        &value[1..value.len() - 1]
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::param::std_params::*;

    const LANPLUS: Param = Param::new("lanplus", ParamKind::Flag, "lanplus").short('P');
    const CIPHER: Param = Param::new("cipher", ParamKind::String, "cipher")
        .short('C')
        .hint("[cipher]");

    fn table() -> Vec<Param> {
        let mut v = COMMON.to_vec();
        v.extend([
            IP,
            IPPORT,
            USERNAME,
            PASSWORD,
            PASSWORD_SCRIPT,
            PLUG_AS_IP,
            PORT_AS_IP,
            USE_SUDO,
            SUDO_PATH,
            METHOD,
            LANPLUS,
            CIPHER,
        ]);
        v
    }

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn stdin(s: &str) -> Parsed {
        parse_stdin(&table(), s.as_bytes()).unwrap()
    }

    #[test]
    fn every_deprecated_stdin_alias_resolves_to_its_canonical_name() {
        let p = stdin(
            "ipaddr=10.0.0.1\nlogin=admin\npasswd=pw\npasswd_script=/bin/x\nport=n1\ndebug=/tmp/d\nsudo=1\n",
        );
        assert_eq!(p.values["ip"], "10.0.0.1");
        assert_eq!(p.values["username"], "admin");
        assert_eq!(p.values["password"], "pw");
        assert_eq!(p.values["password_script"], "/bin/x");
        assert_eq!(p.values["plug"], "n1");
        assert_eq!(p.values["debug_file"], "/tmp/d");
        assert_eq!(p.values["use_sudo"], "1");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn canonical_names_dashes_and_plug_are_accepted() {
        let p = stdin("ip=a\nusername=u\npassword=p\npassword-script=s\nplug=n\ndebug-file=f\nuse-sudo=yes\npower-timeout=7\nstonith_status_sleep=2\n");
        assert_eq!(p.values["password_script"], "s");
        assert_eq!(p.values["debug_file"], "f");
        assert_eq!(p.values["power_timeout"], "7");
        assert_eq!(p.values["stonith_status_sleep"], "2");
        assert_eq!(p.values["use_sudo"], "1");
    }

    #[test]
    fn stdin_comments_blank_lines_whitespace_and_quotes() {
        let p = stdin("# a comment\n\n   ip=1.2.3.4   \r\n  # indented comment\nusername=\"admin\"\npassword=\"\"quoted\"\"\naction=status\n");
        assert_eq!(p.values["ip"], "1.2.3.4");
        assert_eq!(p.values["username"], "admin");
        // only one pair of quotes is removed
        assert_eq!(p.values["password"], "\"quoted\"");
        assert_eq!(p.values["action"], "status");
        assert_eq!(p.values.len(), 4);
    }

    #[test]
    fn value_may_contain_equals_and_last_value_wins() {
        let p = stdin("password=a=b=c\nip=first\nipaddr=second\n");
        assert_eq!(p.values["password"], "a=b=c");
        assert_eq!(p.values["ip"], "second");
    }

    #[test]
    fn unknown_keys_warn_without_value_nodename_is_silent() {
        let p = stdin("nodename=node1\nnodeid=3\npcmk_host_list=n1\nACTION=off\nip=x\n");
        assert_eq!(
            p.warnings,
            vec![
                "Parse error: Ignoring unknown option 'nodeid'".to_string(),
                "Parse error: Ignoring unknown option 'pcmk_host_list'".to_string(),
                "Parse error: Ignoring unknown option 'ACTION'".to_string(),
            ]
        );
        assert!(!p.values.contains_key("action"), "names are case-sensitive");
        for w in &p.warnings {
            assert!(!w.contains("node1") && !w.contains("=3"));
        }
    }

    #[test]
    fn option_is_a_synonym_of_action() {
        assert_eq!(stdin("option=status\n").values["action"], "status");
    }

    #[test]
    fn stdin_booleans() {
        for (v, want) in [
            ("1", "1"),
            ("YES", "1"),
            ("On", "1"),
            ("true", "1"),
            ("0", "0"),
            ("no", "0"),
            ("OFF", "0"),
            ("False", "0"),
        ] {
            assert_eq!(
                stdin(&format!("lanplus={v}\n")).values["lanplus"],
                want,
                "{v}"
            );
        }
        let p = stdin("lanplus=maybe\nverbose=\n");
        assert!(!p.values.contains_key("lanplus"));
        assert_eq!(
            p.warnings,
            vec![
                "Parse error: Ignoring option 'lanplus' because it does not have value",
                "Parse error: Ignoring option 'verbose' because it does not have value"
            ]
        );
        assert_eq!(stdin("verbose=1\n").verbose_count, 1);
        assert_eq!(stdin("verbose=0\n").verbose_count, 0);
    }

    #[test]
    fn malformed_stdin_lines_are_errors_that_do_not_echo_values() {
        let t = table();
        let e = parse_stdin(&t, b"ip=x\nstatus\n").unwrap_err();
        assert!(
            matches!(e, ParseError::MalformedLine { line: 2, .. }),
            "{e}"
        );
        let e = parse_stdin(&t, b"action = off\n").unwrap_err();
        assert!(e.to_string().contains("spaces"), "{e}");
        assert!(e.to_string().contains("'action'"), "{e}");
        let e = parse_stdin(&t, b"pass word=hunter2\n").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = parse_stdin(&t, b"=value\n").unwrap_err();
        assert!(matches!(e, ParseError::MalformedLine { line: 1, .. }));
        assert_eq!(
            parse_stdin(&t, b"ip=\xff\n").unwrap_err(),
            ParseError::StdinNotUtf8
        );
    }

    #[test]
    fn empty_value_is_kept_for_string_options() {
        assert_eq!(stdin("username=\n").values["username"], "");
    }

    #[test]
    fn cli_long_short_clustered_and_permuted() {
        let t = table();
        let p = parse_args(
            &t,
            &args(&[
                "-vvv",
                "extra",
                "--ip=1.2.3.4",
                "-u",
                "623",
                "-lroot",
                "--password",
                "-dash-start",
                "-P",
                "-C3",
                "-o",
                "STATUS",
            ]),
        )
        .unwrap();
        assert_eq!(p.verbose_count, 3);
        assert_eq!(p.values["ip"], "1.2.3.4");
        assert_eq!(p.values["ipport"], "623");
        assert_eq!(p.values["username"], "root");
        assert_eq!(p.values["password"], "-dash-start");
        assert_eq!(p.values["lanplus"], "1");
        assert_eq!(p.values["cipher"], "3");
        assert_eq!(p.values["action"], "STATUS");
        assert_eq!(
            p.warnings,
            vec!["Unused arguments on command line: 1 (not shown: they may hold a secret)"]
        );
    }

    #[test]
    fn cli_unique_prefixes_and_errors() {
        let t = table();
        let p = parse_args(&t, &args(&["--power-t=5", "--lanp"])).unwrap();
        assert_eq!(p.values["power_timeout"], "5");
        assert_eq!(p.values["lanplus"], "1");
        assert_eq!(
            parse_args(&t, &args(&["--zzz"])).unwrap_err().to_string(),
            "Parse error: option --zzz not recognized"
        );
        assert_eq!(
            parse_args(&t, &args(&["-z"])).unwrap_err(),
            ParseError::UnknownOption("-z".into())
        );
        assert_eq!(
            parse_args(&t, &args(&["--pass=x"])).unwrap_err(),
            ParseError::AmbiguousOption("--pass".into())
        );
        assert_eq!(
            parse_args(&t, &args(&["--ip"])).unwrap_err(),
            ParseError::MissingArgument("--ip".into())
        );
        assert_eq!(
            parse_args(&t, &args(&["-a"])).unwrap_err(),
            ParseError::MissingArgument("-a".into())
        );
        assert_eq!(
            parse_args(&t, &args(&["--lanplus=1"])).unwrap_err(),
            ParseError::UnexpectedArgument("--lanplus".into())
        );
        // deprecated names exist only on stdin, as in fencing.py
        assert!(parse_args(&t, &args(&["--ipaddr=x"])).is_err());
    }

    #[test]
    fn cli_plug_requires_port_as_ip() {
        let t = table();
        assert_eq!(
            parse_args(&t, &args(&["-n", "3"])).unwrap_err(),
            ParseError::PlugWithoutPortAsIp
        );
        let p = parse_args(&t, &args(&["-n", "10.1.1.1", "--port-as-ip"])).unwrap();
        assert_eq!(p.values["plug"], "10.1.1.1");
    }

    #[test]
    fn cli_double_dash_ends_options() {
        let p = parse_args(&table(), &args(&["-a", "x", "--", "-o", "off"])).unwrap();
        assert!(!p.values.contains_key("action"));
        assert_eq!(p.warnings.len(), 1);
    }
}
