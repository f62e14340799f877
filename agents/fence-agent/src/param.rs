//! Parameter declarations: each agent lists its parameters in a table of [`Param`]s and the
//! library derives option parsing, validation, `--help` and metadata from that table.
//!
//! The standard parameters every fencing.py agent shares live in [`std_params`]; an agent
//! copies the ones it uses and may change defaults with the builder methods.

/// How a parameter's value is read and how it is typed in the metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A boolean switch: no value on the command line; `1|yes|on|true` / `0|no|off|false` on stdin.
    Flag,
    /// Free text.
    String,
    /// A (possibly signed) decimal integer, as Python's `int()` accepts it.
    Integer,
    /// A non-negative whole number of seconds (metadata type `second`).
    Second,
    /// One of a fixed set of values, compared case-insensitively.
    Select(&'static [&'static str]),
}

impl ParamKind {
    /// Whether the option takes a value on the command line.
    pub fn takes_value(self) -> bool {
        !matches!(self, ParamKind::Flag)
    }

    /// The metadata `content/@type` of this kind.
    pub fn metadata_type(self) -> &'static str {
        match self {
            ParamKind::Flag => "boolean",
            ParamKind::String => "string",
            ParamKind::Integer => "integer",
            ParamKind::Second => "second",
            ParamKind::Select(_) => "select",
        }
    }
}

/// One agent parameter.
///
/// `name` is the canonical name: the stdin key, the metadata name and (with `_` replaced by `-`)
/// the long command-line option. `deprecated_name` is the old stdin key (e.g. `ipaddr` for `ip`),
/// shown in the metadata as a second entry with `deprecated="1"` while the canonical entry gets
/// `obsoletes="<old>"`, exactly as fencing.py does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    pub deprecated_name: Option<&'static str>,
    pub short: Option<char>,
    /// Placeholder shown after `=` in `--help` and `<getopt mixed>`, e.g. `[ip]`.
    pub value_hint: Option<&'static str>,
    pub kind: ParamKind,
    pub default: Option<&'static str>,
    pub shortdesc: &'static str,
    /// Sort key of the metadata and `--help` (then the name), as fencing.py's `order`.
    pub order: u32,
    /// The metadata `required` attribute (only `action` has it in fencing.py agents).
    pub required: bool,
    /// Shown in the metadata and `--help`.
    pub in_metadata: bool,
    /// The value is a secret (password, key): never logged, redacted everywhere.
    pub secret: bool,
}

impl Param {
    /// A new parameter with the given name, kind and description, order 1, optional, visible.
    pub const fn new(name: &'static str, kind: ParamKind, shortdesc: &'static str) -> Param {
        Param {
            name,
            deprecated_name: None,
            short: None,
            value_hint: None,
            kind,
            default: None,
            shortdesc,
            order: 1,
            required: false,
            in_metadata: true,
            secret: false,
        }
    }
    pub const fn short(mut self, c: char) -> Param {
        self.short = Some(c);
        self
    }
    pub const fn hint(mut self, hint: &'static str) -> Param {
        self.value_hint = Some(hint);
        self
    }
    pub const fn default(mut self, value: &'static str) -> Param {
        self.default = Some(value);
        self
    }
    pub const fn deprecated(mut self, old_name: &'static str) -> Param {
        self.deprecated_name = Some(old_name);
        self
    }
    pub const fn order(mut self, order: u32) -> Param {
        self.order = order;
        self
    }
    pub const fn required(mut self) -> Param {
        self.required = true;
        self
    }
    pub const fn hidden(mut self) -> Param {
        self.in_metadata = false;
        self
    }
    pub const fn secret(mut self) -> Param {
        self.secret = true;
        self
    }

    /// The long command-line option without the leading `--`, e.g. `power-timeout`.
    pub fn long_option(&self) -> String {
        self.name.replace('_', "-")
    }

    /// The `<getopt mixed="...">` text, e.g. `-a, --ip=[ip]`.
    pub fn getopt_mixed(&self) -> String {
        let mut s = String::new();
        if let Some(c) = self.short {
            s.push('-');
            s.push(c);
            s.push_str(", ");
        }
        s.push_str("--");
        s.push_str(&self.long_option());
        if let Some(h) = self.value_hint {
            s.push('=');
            s.push_str(h);
        }
        s
    }

    /// Whether `key` (a stdin key, `-` and `_` equivalent) names this parameter.
    pub fn matches_key(&self, key: &str) -> bool {
        let key = key.replace('-', "_");
        key == self.name || self.deprecated_name == Some(key.as_str())
    }
}

/// The parameters fencing.py defines for every agent (`all_opt`), with its texts and defaults.
pub mod std_params {
    use super::{Param, ParamKind};

    pub const ACTION: Param = Param::new("action", ParamKind::String, "Fencing action")
        .short('o')
        .hint("[action]")
        .default("reboot")
        .required();
    pub const IP: Param = Param::new(
        "ip",
        ParamKind::String,
        "IP address or hostname of fencing device",
    )
    .short('a')
    .hint("[ip]")
    .deprecated("ipaddr");
    pub const IPPORT: Param = Param::new(
        "ipport",
        ParamKind::Integer,
        "TCP/UDP port to use for connection with device",
    )
    .short('u')
    .hint("[port]");
    pub const USERNAME: Param = Param::new("username", ParamKind::String, "Login name")
        .short('l')
        .hint("[name]")
        .deprecated("login");
    pub const PASSWORD: Param = Param::new(
        "password",
        ParamKind::String,
        "Login password or passphrase",
    )
    .short('p')
    .hint("[password]")
    .deprecated("passwd")
    .secret();
    pub const PASSWORD_SCRIPT: Param = Param::new(
        "password_script",
        ParamKind::String,
        "Script to run to retrieve password",
    )
    .short('S')
    .hint("[script]")
    .deprecated("passwd_script");
    /// For agents without real plugs (`port_as_ip`): the plug is an alternative address.
    pub const PLUG_AS_IP: Param = Param::new(
        "plug",
        ParamKind::String,
        "IP address or hostname of fencing device (together with --port-as-ip)",
    )
    .short('n')
    .hint("[ip]")
    .deprecated("port");
    pub const METHOD: Param = Param::new(
        "method",
        ParamKind::Select(&["onoff", "cycle"]),
        "Method to fence",
    )
    .short('m')
    .hint("[method]")
    .default("onoff");
    pub const QUIET: Param = Param::new(
        "quiet",
        ParamKind::Flag,
        "Disable logging to stderr. Does not affect --verbose or --debug-file or logging to syslog.",
    )
    .short('q')
    .order(50);
    pub const VERBOSE: Param = Param::new(
        "verbose",
        ParamKind::Flag,
        "Verbose mode. Multiple -v flags can be stacked on the command line (e.g., -vvv) to increase verbosity.",
    )
    .short('v')
    .order(51);
    pub const VERBOSE_LEVEL: Param = Param::new(
        "verbose_level",
        ParamKind::Integer,
        "Level of debugging detail in output. Defaults to the number of --verbose flags specified on the command line, or to 1 if verbose=1 in a stonith device configuration (i.e., on stdin).",
    )
    .order(52);
    pub const DEBUG_FILE: Param = Param::new(
        "debug_file",
        ParamKind::String,
        "Write debug information to given file",
    )
    .short('D')
    .hint("[debugfile]")
    .deprecated("debug")
    .order(53);
    pub const VERSION: Param = Param::new(
        "version",
        ParamKind::Flag,
        "Display version information and exit",
    )
    .short('V')
    .order(54);
    pub const HELP: Param = Param::new("help", ParamKind::Flag, "Display help and exit")
        .short('h')
        .order(55);
    pub const PLUG_SEPARATOR: Param = Param::new(
        "plug_separator",
        ParamKind::String,
        "Separator for plug parameter when specifying more than 1 plug",
    )
    .hint("[char]")
    .default(",")
    .order(100);
    pub const DELAY: Param = Param::new(
        "delay",
        ParamKind::Second,
        "Wait X seconds before fencing is started",
    )
    .hint("[seconds]")
    .default("0")
    .order(200);
    pub const DISABLE_TIMEOUT: Param = Param::new(
        "disable_timeout",
        ParamKind::String,
        "Disable timeout (true/false) (default: true when run from Pacemaker 2.0+)",
    )
    .hint("[true/false]")
    .order(200);
    pub const LOGIN_TIMEOUT: Param = Param::new(
        "login_timeout",
        ParamKind::Second,
        "Wait X seconds for cmd prompt after login",
    )
    .hint("[seconds]")
    .default("5")
    .order(200);
    pub const PORT_AS_IP: Param = Param::new(
        "port_as_ip",
        ParamKind::Flag,
        "Make \"port/plug\" to be an alias to IP address",
    )
    .order(200);
    pub const POWER_TIMEOUT: Param = Param::new(
        "power_timeout",
        ParamKind::Second,
        "Test X seconds for status change after ON/OFF",
    )
    .hint("[seconds]")
    .default("20")
    .order(200);
    pub const POWER_WAIT: Param = Param::new(
        "power_wait",
        ParamKind::Second,
        "Wait X seconds after issuing ON/OFF",
    )
    .hint("[seconds]")
    .default("0")
    .order(200);
    pub const SHELL_TIMEOUT: Param = Param::new(
        "shell_timeout",
        ParamKind::Second,
        "Wait X seconds for cmd prompt after issuing command",
    )
    .hint("[seconds]")
    .default("3")
    .order(200);
    pub const STONITH_STATUS_SLEEP: Param = Param::new(
        "stonith_status_sleep",
        ParamKind::Second,
        "Sleep X seconds between status calls during a STONITH action",
    )
    .hint("[seconds]")
    .default("1")
    .order(200);
    pub const RETRY_ON: Param = Param::new(
        "retry_on",
        ParamKind::Integer,
        "Count of attempts to retry power on",
    )
    .hint("[attempts]")
    .default("1")
    .order(201);
    pub const USE_SUDO: Param = Param::new(
        "use_sudo",
        ParamKind::Flag,
        "Use sudo (without password) when calling 3rd party software",
    )
    .deprecated("sudo")
    .order(205);
    pub const SUDO_PATH: Param = Param::new("sudo_path", ParamKind::String, "Path to sudo binary")
        .hint("[path]")
        .default("/usr/bin/sudo")
        .order(300);

    /// The options fencing.py adds to every agent (its `DEPENDENCY_OPT["default"]`) plus the
    /// timing options of a power-switch agent.
    pub const COMMON: &[Param] = &[
        ACTION,
        QUIET,
        VERBOSE,
        VERBOSE_LEVEL,
        DEBUG_FILE,
        VERSION,
        HELP,
        PLUG_SEPARATOR,
        DELAY,
        DISABLE_TIMEOUT,
        LOGIN_TIMEOUT,
        POWER_TIMEOUT,
        POWER_WAIT,
        SHELL_TIMEOUT,
        STONITH_STATUS_SLEEP,
        RETRY_ON,
    ];
}

/// Find the parameter a key names (canonical or deprecated name; `-` and `_` are equivalent).
pub fn lookup<'a>(params: &'a [Param], key: &str) -> Option<&'a Param> {
    params.iter().find(|p| p.matches_key(key))
}

#[cfg(test)]
mod tests {
    use super::std_params::*;
    use super::*;

    #[test]
    fn getopt_mixed_matches_fencing_py() {
        assert_eq!(IP.getopt_mixed(), "-a, --ip=[ip]");
        assert_eq!(VERBOSE_LEVEL.getopt_mixed(), "--verbose-level");
        assert_eq!(QUIET.getopt_mixed(), "-q, --quiet");
        assert_eq!(
            STONITH_STATUS_SLEEP.getopt_mixed(),
            "--stonith-status-sleep=[seconds]"
        );
    }

    #[test]
    fn lookup_treats_dash_and_underscore_alike_and_knows_old_names() {
        let params = [IP, PASSWORD_SCRIPT, POWER_TIMEOUT];
        assert_eq!(lookup(&params, "ipaddr").unwrap().name, "ip");
        assert_eq!(
            lookup(&params, "passwd-script").unwrap().name,
            "password_script"
        );
        assert_eq!(
            lookup(&params, "power-timeout").unwrap().name,
            "power_timeout"
        );
        assert!(lookup(&params, "IP").is_none(), "names are case-sensitive");
        assert!(lookup(&params, "nodename").is_none());
    }
}
