//! packaging-gen: the packages' generated documentation.
//!
//! Man pages are never written by hand where the program can describe itself, so they cannot
//! drift from it:
//! - `fence_ipmi(8)` from the agent's `-o metadata` XML (fence-agents builds its pages from the
//!   same XML), see [`fence_agent_page`];
//! - `kvm-host(8)` from the OCF agent's `meta-data` XML plus the `check-peer --help` text, see
//!   [`ocf_agent_page`];
//! - `hactl-kvm(8)` and one page per subcommand, and the shell completions, from the CLI's own
//!   clap parser ([`hactl_kvm_cli::command`]), see [`cli_pages`] and [`completions`].
//!
//! Everything here is pure (strings in, strings out); the binary does the file I/O.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Why a page could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The metadata is not well-formed XML.
    #[error("metadata is not well-formed XML: {0}")]
    Xml(String),
    /// The metadata lacks something every page needs.
    #[error("metadata has no {0}")]
    Missing(&'static str),
    /// Rendering the clap page failed.
    #[error("cannot render man page: {0}")]
    Render(#[from] std::io::Error),
}

/// One `<parameter>` of an agent's metadata.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// The parameter (stdin key / OCF_RESKEY_) name.
    pub name: String,
    /// `required="1"`.
    pub required: bool,
    /// `deprecated="1"`: an old alias.
    pub deprecated: bool,
    /// The parameter this one replaces (`obsoletes="..."`).
    pub obsoletes: Option<String>,
    /// The command-line spelling (`<getopt mixed=...>`), fence agents only.
    pub getopt: Option<String>,
    /// `<content type=...>`.
    pub content_type: String,
    /// `<content default=...>`, if any and not empty.
    pub default: Option<String>,
    /// `<option value=...>` choices of a select.
    pub choices: Vec<String>,
    /// `<shortdesc>`.
    pub shortdesc: String,
    /// `<longdesc>` (OCF agents).
    pub longdesc: String,
}

/// One `<action>` of an agent's metadata with its attributes (name first).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Action {
    /// The action's name.
    pub name: String,
    /// The other attributes (timeout, interval, depth, automatic, on_target...), in order.
    pub attributes: Vec<(String, String)>,
}

/// The parts of a fence or OCF agent's metadata a man page shows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// `<resource-agent name=...>`.
    pub name: String,
    /// `shortdesc` attribute (fence agents) or `<shortdesc>` element (OCF agents).
    pub shortdesc: String,
    /// The agent's `<longdesc>`.
    pub longdesc: String,
    /// Every parameter, in document order.
    pub parameters: Vec<Parameter>,
    /// Every action, in document order.
    pub actions: Vec<Action>,
}

fn attr(e: &BytesStart<'_>, name: &str) -> Result<Option<String>, GenError> {
    match e.try_get_attribute(name) {
        Ok(Some(a)) => a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map(|v| Some(v.into_owned()))
            .map_err(|err| GenError::Xml(err.to_string())),
        Ok(None) => Ok(None),
        Err(err) => Err(GenError::Xml(err.to_string())),
    }
}

/// Where text currently read belongs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TextSlot {
    None,
    AgentLong,
    AgentShort,
    ParamLong,
    ParamShort,
}

/// Parses a fence agent's (`-o metadata`) or an OCF agent's (`meta-data`) XML.
pub fn parse_metadata(xml: &str) -> Result<Metadata, GenError> {
    let mut reader = Reader::from_str(xml);
    let mut meta = Metadata::default();
    let mut current: Option<Parameter> = None;
    let mut slot = TextSlot::None;
    let mut in_actions = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| GenError::Xml(e.to_string()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                match e.name().as_ref() {
                    b"resource-agent" => {
                        meta.name = attr(e, "name")?.ok_or(GenError::Missing("agent name"))?;
                        if let Some(s) = attr(e, "shortdesc")? {
                            meta.shortdesc = s;
                        }
                    }
                    b"parameter" => {
                        current = Some(Parameter {
                            name: attr(e, "name")?.ok_or(GenError::Missing("parameter name"))?,
                            required: attr(e, "required")?.as_deref() == Some("1"),
                            deprecated: attr(e, "deprecated")?.as_deref() == Some("1"),
                            obsoletes: attr(e, "obsoletes")?,
                            ..Parameter::default()
                        });
                    }
                    b"getopt" => {
                        if let Some(p) = current.as_mut() {
                            p.getopt = attr(e, "mixed")?;
                        }
                    }
                    b"content" => {
                        if let Some(p) = current.as_mut() {
                            p.content_type = attr(e, "type")?.unwrap_or_default();
                            p.default = attr(e, "default")?.filter(|d| !d.is_empty());
                        }
                    }
                    b"option" => {
                        if let (Some(p), Some(v)) = (current.as_mut(), attr(e, "value")?) {
                            p.choices.push(v);
                        }
                    }
                    b"actions" => in_actions = !empty,
                    b"action" if in_actions => {
                        let mut action = Action::default();
                        for a in e.attributes() {
                            let a = a.map_err(|err| GenError::Xml(err.to_string()))?;
                            let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                            let value = a
                                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .map_err(|err| GenError::Xml(err.to_string()))?
                                .into_owned();
                            if key == "name" {
                                action.name = value;
                            } else {
                                action.attributes.push((key, value));
                            }
                        }
                        meta.actions.push(action);
                    }
                    b"longdesc" if !empty => {
                        slot = if current.is_some() {
                            TextSlot::ParamLong
                        } else {
                            TextSlot::AgentLong
                        }
                    }
                    b"shortdesc" if !empty => {
                        slot = if current.is_some() {
                            TextSlot::ParamShort
                        } else {
                            TextSlot::AgentShort
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| GenError::Xml(e.to_string()))?;
                let text =
                    quick_xml::escape::unescape(&text).map_err(|e| GenError::Xml(e.to_string()))?;
                push_text(&mut meta, current.as_mut(), slot, &text);
            }
            Event::GeneralRef(r) => {
                // quick-xml reports entity references (&lt; ...) apart from the text around them.
                let name = r.decode().map_err(|e| GenError::Xml(e.to_string()))?;
                let reference = format!("&{name};");
                let resolved = quick_xml::escape::unescape(&reference)
                    .map_err(|e| GenError::Xml(e.to_string()))?;
                push_text(&mut meta, current.as_mut(), slot, &resolved);
            }
            Event::CData(t) => {
                let text = String::from_utf8_lossy(&t).into_owned();
                push_text(&mut meta, current.as_mut(), slot, &text);
            }
            Event::End(e) => match e.name().as_ref() {
                b"parameter" => {
                    if let Some(p) = current.take() {
                        meta.parameters.push(p);
                    }
                }
                b"actions" => in_actions = false,
                b"longdesc" | b"shortdesc" => slot = TextSlot::None,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    if meta.name.is_empty() {
        return Err(GenError::Missing("<resource-agent name=...>"));
    }
    Ok(meta)
}

fn push_text(meta: &mut Metadata, param: Option<&mut Parameter>, slot: TextSlot, text: &str) {
    let target = match (slot, param) {
        (TextSlot::AgentLong, _) => &mut meta.longdesc,
        (TextSlot::AgentShort, _) => &mut meta.shortdesc,
        (TextSlot::ParamLong, Some(p)) => &mut p.longdesc,
        (TextSlot::ParamShort, Some(p)) => &mut p.shortdesc,
        _ => return,
    };
    target.push_str(text);
}

/// Escapes text for a roff line: backslashes, hyphens (so they stay ASCII minus signs, which
/// matters for options a reader copies), and a leading control character.
pub fn roff_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            _ => out.push(c),
        }
    }
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

/// Paragraphs of free text (blank-line separated) as roff, whitespace within each joined.
fn roff_paragraphs(text: &str) -> String {
    let mut out = String::new();
    for para in text.split("\n\n") {
        let joined = para.split_whitespace().collect::<Vec<_>>().join(" ");
        if joined.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str(".PP\n");
        }
        out.push_str(&roff_escape(&joined));
        out.push('\n');
    }
    out
}

/// Text shown verbatim (no filling), e.g. a `--help` output.
fn roff_verbatim(text: &str) -> String {
    let mut out = String::from(".nf\n");
    for line in text.lines() {
        out.push_str(&roff_escape(line));
        out.push('\n');
    }
    out.push_str(".fi\n");
    out
}

fn header(name: &str, version: &str, manual: &str) -> String {
    format!(
        ".TH {} 8 \"\" \"{} {}\" \"{}\"\n",
        roff_escape(&name.to_uppercase()),
        roff_escape(name),
        roff_escape(version),
        manual
    )
}

fn param_details(p: &Parameter) -> String {
    let mut notes = Vec::new();
    if p.required {
        notes.push("required".to_string());
    }
    if let Some(d) = &p.default {
        notes.push(format!("default: {d}"));
    }
    if !p.choices.is_empty() {
        notes.push(format!("one of: {}", p.choices.join(", ")));
    }
    if p.deprecated {
        notes.push("deprecated".to_string());
    }
    if let Some(o) = &p.obsoletes {
        notes.push(format!("replaces the deprecated {o}"));
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!("({})", notes.join("; "))
    }
}

/// `fence_ipmi(8)` (or any fence agent's page) from its `-o metadata` XML, laid out as
/// fence-agents' pages are: description, the command-line options, the actions, the stdin keys.
pub fn fence_agent_page(xml: &str, version: &str) -> Result<String, GenError> {
    let meta = parse_metadata(xml)?;
    let mut out = header(&meta.name, version, "System Manager's Manual");
    out.push_str(".SH NAME\n");
    out.push_str(&format!(
        "{} \\- {}\n",
        roff_escape(&meta.name),
        roff_escape(meta.shortdesc.trim())
    ));
    out.push_str(".SH SYNOPSIS\n");
    out.push_str(&format!(
        ".B {}\n[\\fIOPTION\\fR]...\n.PP\n.B {}\n< \\fIKEY=VALUE lines on stdin\\fR\n",
        roff_escape(&meta.name),
        roff_escape(&meta.name)
    ));
    out.push_str(".SH DESCRIPTION\n");
    out.push_str(&roff_paragraphs(&meta.longdesc));
    out.push_str(
        ".PP\nWith arguments, options are read from the command line only; without any, \
                  one \\fIkey\\fR=\\fIvalue\\fR per line is read from standard input (the way \
                  Pacemaker's fencer calls the agent). Exit status: 0 success, 1 failure, 2 status \
                  off.\n",
    );
    out.push_str(".SH OPTIONS\n");
    for p in meta.parameters.iter().filter(|p| !p.deprecated) {
        let Some(getopt) = &p.getopt else { continue };
        out.push_str(&format!(".TP\n.B {}\n", roff_escape(getopt)));
        out.push_str(&roff_escape(p.shortdesc.trim()));
        let details = param_details(p);
        if !details.is_empty() {
            out.push(' ');
            out.push_str(&roff_escape(&details));
        }
        out.push('\n');
    }
    out.push_str(".SH ACTIONS\n");
    for a in &meta.actions {
        out.push_str(&format!(".TP\n.B {}\n", roff_escape(&a.name)));
        out.push_str(&action_text(&a.name));
        out.push('\n');
    }
    out.push_str(".SH STDIN PARAMETERS\n");
    for p in &meta.parameters {
        out.push_str(&format!(".TP\n.B {}\n", roff_escape(&p.name)));
        out.push_str(&roff_escape(p.shortdesc.trim()));
        let details = param_details(p);
        if !details.is_empty() {
            out.push(' ');
            out.push_str(&roff_escape(&details));
        }
        out.push('\n');
    }
    out.push_str(".SH SEE ALSO\n.BR stonith_admin (8),\n.BR fence_ipmilan (8)\n");
    Ok(out)
}

fn action_text(action: &str) -> String {
    let text = match action {
        "on" => "Power on the machine.",
        "off" => "Power off the machine.",
        "reboot" => "Power off, then on (or cycle, with method=cycle).",
        "status" => "Print the power status (exit 0 on, 2 off).",
        "monitor" => "Check that the fence device answers.",
        "list" => "List the ports (nodes) the device controls.",
        "list-status" => "List the ports with their status.",
        "metadata" => "Print the agent's metadata XML (this page is generated from it).",
        "manpage" => "Print the metadata XML, as metadata does.",
        "validate-all" => "Check the parameters and exit.",
        "diag" => "Pulse a diagnostic interrupt (NMI) to the machine.",
        "start" => "Start the resource.",
        "stop" => "Stop the resource.",
        "meta-data" => "Print the agent's meta-data XML (this page is generated from it).",
        _ => "",
    };
    roff_escape(text)
}

/// `kvm-host(8)` (or any OCF agent's page) from its `meta-data` XML; `tools` are further
/// sections (title, verbatim text) such as a subcommand's `--help`.
pub fn ocf_agent_page(
    xml: &str,
    version: &str,
    provider: &str,
    tools: &[(&str, &str)],
) -> Result<String, GenError> {
    let meta = parse_metadata(xml)?;
    let mut out = header(&meta.name, version, "System Manager's Manual");
    out.push_str(".SH NAME\n");
    out.push_str(&format!(
        "{} \\- {}\n",
        roff_escape(&meta.name),
        roff_escape(meta.shortdesc.trim())
    ));
    out.push_str(".SH SYNOPSIS\n");
    let actions: Vec<&str> = {
        let mut seen = Vec::new();
        for a in &meta.actions {
            if !seen.contains(&a.name.as_str()) {
                seen.push(a.name.as_str());
            }
        }
        seen
    };
    out.push_str(&format!(
        ".B {}\n{{{}}}\n.PP\nAs a cluster resource: \\fBocf:{}:{}\\fR\n",
        roff_escape(&meta.name),
        roff_escape(&actions.join("|")),
        roff_escape(provider),
        roff_escape(&meta.name)
    ));
    out.push_str(".SH DESCRIPTION\n");
    out.push_str(&roff_paragraphs(&meta.longdesc));
    out.push_str(
        ".SH PARAMETERS\nSet as resource parameters, or as \\fBOCF_RESKEY_\\fIname\\fR \
                  environment variables when run by hand.\n",
    );
    for p in &meta.parameters {
        out.push_str(&format!(".TP\n.B {}\n", roff_escape(&p.name)));
        let desc = if p.longdesc.trim().is_empty() {
            &p.shortdesc
        } else {
            &p.longdesc
        };
        out.push_str(&roff_paragraphs(desc).replace(".PP\n", ".IP\n"));
        let details = param_details(p);
        if !details.is_empty() {
            out.push_str(&format!(".IP\n{}\n", roff_escape(&details)));
        }
    }
    out.push_str(".SH ACTIONS\n");
    for a in &meta.actions {
        out.push_str(&format!(".TP\n.B {}\n", roff_escape(&a.name)));
        let attrs: Vec<String> = a
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut line = action_text(&a.name);
        if !attrs.is_empty() {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&roff_escape(&format!("({})", attrs.join(", "))));
        }
        out.push_str(&line);
        out.push('\n');
    }
    for (title, text) in tools {
        out.push_str(&format!(".SH {}\n", roff_escape(&title.to_uppercase())));
        out.push_str(&roff_verbatim(text));
    }
    out.push_str(".SH SEE ALSO\n.BR crm_resource (8),\n.BR ocf\\-tester (8)\n");
    Ok(out)
}

/// A generated file: its name and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// File name (no directory).
    pub name: String,
    /// Content.
    pub content: Vec<u8>,
}

/// `hactl-kvm.8` and `hactl-kvm-<subcommand>.8` for every visible subcommand (recursively),
/// section 8 because the program is an administrator's daemon/tool.
pub fn cli_pages(cmd: clap::Command) -> Result<Vec<GeneratedFile>, GenError> {
    let mut out = Vec::new();
    let root_name = cmd.get_name().to_string();
    collect_pages(cmd, &root_name, &root_name, &mut out)?;
    Ok(out)
}

fn collect_pages(
    cmd: clap::Command,
    page_name: &str,
    bin_name: &str,
    out: &mut Vec<GeneratedFile>,
) -> Result<(), GenError> {
    let named = cmd
        .clone()
        .name(page_name.to_string())
        .bin_name(bin_name.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(named).section("8").render(&mut buf)?;
    out.push(GeneratedFile {
        name: format!("{page_name}.8"),
        content: buf,
    });
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let sub_page = format!("{page_name}-{}", sub.get_name());
        let sub_bin = format!("{bin_name} {}", sub.get_name());
        collect_pages(sub.clone(), &sub_page, &sub_bin, out)?;
    }
    Ok(())
}

/// Completion scripts for bash, zsh and fish, named as those shells look them up
/// (`completions/<bin>`, `_<bin>`, `<bin>.fish`).
pub fn completions(cmd: clap::Command) -> Vec<GeneratedFile> {
    use clap_complete::Shell;
    let bin = cmd.get_name().to_string();
    let mut out = Vec::new();
    for (shell, name) in [
        (Shell::Bash, bin.clone()),
        (Shell::Zsh, format!("_{bin}")),
        (Shell::Fish, format!("{bin}.fish")),
    ] {
        let mut cmd = cmd.clone();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, bin.clone(), &mut buf);
        out.push(GeneratedFile { name, content: buf });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FENCE: &str = r#"<?xml version="1.0" ?>
<resource-agent name="fence_x" shortdesc="Fence agent for X" >
<longdesc>Line one &amp; more.</longdesc>
<parameters>
	<parameter name="ip" unique="0" required="1" obsoletes="ipaddr">
		<getopt mixed="-a, --ip=[ip]" />
		<content type="string"  />
		<shortdesc lang="en">IP address</shortdesc>
	</parameter>
	<parameter name="ipaddr" unique="0" required="1" deprecated="1">
		<getopt mixed="-a, --ip=[ip]" />
		<content type="string"  />
		<shortdesc lang="en">IP address</shortdesc>
	</parameter>
	<parameter name="auth" unique="0" required="0">
		<getopt mixed="-A, --auth=[auth]" />
		<content type="select" default="none" >
			<option value="md5" />
			<option value="none" />
		</content>
		<shortdesc lang="en">Auth type.</shortdesc>
	</parameter>
</parameters>
<actions>
	<action name="on" automatic="0"/>
	<action name="metadata" />
</actions>
</resource-agent>"#;

    #[test]
    fn parses_fence_metadata() {
        let m = parse_metadata(FENCE).unwrap();
        assert_eq!(m.name, "fence_x");
        assert_eq!(m.shortdesc, "Fence agent for X");
        assert_eq!(m.longdesc, "Line one & more.");
        assert_eq!(m.parameters.len(), 3);
        assert_eq!(m.parameters[0].obsoletes.as_deref(), Some("ipaddr"));
        assert!(m.parameters[1].deprecated);
        assert_eq!(m.parameters[2].choices, ["md5", "none"]);
        assert_eq!(m.parameters[2].default.as_deref(), Some("none"));
        assert_eq!(m.actions[0].name, "on");
        assert_eq!(m.actions[0].attributes, [("automatic".into(), "0".into())]);
    }

    #[test]
    fn fence_page_lists_options_once_and_every_stdin_key() {
        let page = fence_agent_page(FENCE, "1.2.3").unwrap();
        assert!(page.starts_with(".TH FENCE_X 8"));
        assert!(page.contains("fence_x \\- Fence agent for X"));
        // The deprecated alias is not a second command-line option, but is a stdin key.
        assert_eq!(page.matches("\\-a, \\-\\-ip=[ip]").count(), 1);
        assert!(page.contains(".B ipaddr\n"));
        assert!(page.contains("one of: md5, none"));
        assert!(page.contains(".B metadata\n"));
    }

    #[test]
    fn rejects_broken_xml() {
        assert!(parse_metadata("<resource-agent name=\"x\"><a></b>").is_err());
        assert!(matches!(
            parse_metadata("<other/>"),
            Err(GenError::Missing(_))
        ));
    }

    #[test]
    fn roff_escapes_control_characters() {
        assert_eq!(roff_escape(".x -y \\z"), "\\&.x \\-y \\ez");
    }

    #[test]
    fn cli_has_a_page_per_subcommand_and_completions() {
        let pages = cli_pages(hactl_kvm_cli::command()).unwrap();
        let names: Vec<&str> = pages.iter().map(|p| p.name.as_str()).collect();
        assert!(names.contains(&"hactl-kvm.8"));
        assert!(names.contains(&"hactl-kvm-simulate.8"));
        let simulate = &pages
            .iter()
            .find(|p| p.name == "hactl-kvm-simulate.8")
            .unwrap();
        let text = String::from_utf8_lossy(&simulate.content);
        assert!(text.contains("\\-\\-scenario"), "{text}");
        let comps = completions(hactl_kvm_cli::command());
        let bash = comps.iter().find(|c| c.name == "hactl-kvm").unwrap();
        assert!(String::from_utf8_lossy(&bash.content).contains("simulate"));
    }
}
