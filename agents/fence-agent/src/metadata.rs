//! The `metadata` XML (fencing.py's `metadata()`): validated by `metadata.rng` of
//! fence-agents and read by Pacemaker, pcs and crmsh.
//!
//! Element and attribute rules follow fencing.py; only whitespace differs (quick-xml's
//! indentation), which no consumer depends on.

use std::io;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use crate::options::Action;
use crate::param::{Param, ParamKind};

/// What an agent says about itself in the metadata and in `--help`.
#[derive(Clone, Debug)]
pub struct AgentDocs {
    /// The agent's name (basename of argv[0]): the `name` attribute of the root.
    pub name: String,
    pub shortdesc: String,
    pub longdesc: String,
    pub vendor_url: String,
    /// Other names the agent is installed under, with their short descriptions.
    pub symlinks: Vec<(String, String)>,
    /// Actions listed in `<actions>`, in order.
    pub actions: Vec<Action>,
}

/// One metadata `<parameter>` entry: a canonical parameter, or the deprecated twin of one.
struct Entry<'a> {
    name: &'a str,
    param: &'a Param,
    deprecated: bool,
    obsoletes: Option<&'a str>,
}

fn entries(params: &[Param]) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    for p in params.iter().filter(|p| p.in_metadata) {
        out.push(Entry {
            name: p.name,
            param: p,
            deprecated: false,
            obsoletes: p.deprecated_name,
        });
        if let Some(old) = p.deprecated_name {
            out.push(Entry {
                name: old,
                param: p,
                deprecated: true,
                obsoletes: None,
            });
        }
    }
    // fencing.py sorts by (order, internal key); each twin is sorted under its own name.
    out.sort_by(|a, b| (a.param.order, a.name).cmp(&(b.param.order, b.name)));
    out
}

/// Render the metadata XML document.
pub fn render(docs: &AgentDocs, params: &[Param]) -> String {
    let mut buf = Vec::new();
    write(&mut buf, docs, params).expect("writing XML to memory cannot fail");
    let mut s = String::from_utf8(buf).expect("quick-xml writes UTF-8");
    s.push('\n');
    s
}

fn write(out: &mut Vec<u8>, docs: &AgentDocs, params: &[Param]) -> io::Result<()> {
    let mut w = Writer::new_with_indent(out, b'\t', 1);
    w.write_event(Event::Decl(BytesDecl::new("1.0", None, None)))?;
    w.create_element("resource-agent")
        .with_attribute(("name", docs.name.as_str()))
        .with_attribute(("shortdesc", docs.shortdesc.as_str()))
        .write_inner_content(|w| {
            for (name, shortdesc) in &docs.symlinks {
                w.create_element("symlink")
                    .with_attribute(("name", name.as_str()))
                    .with_attribute(("shortdesc", shortdesc.as_str()))
                    .write_empty()?;
            }
            w.create_element("longdesc")
                .write_text_content(BytesText::new(&docs.longdesc))?;
            w.create_element("vendor-url")
                .write_text_content(BytesText::new(&docs.vendor_url))?;
            w.create_element("parameters").write_inner_content(|w| {
                for e in entries(params) {
                    write_parameter(w, &e)?;
                }
                Ok(())
            })?;
            w.create_element("actions").write_inner_content(|w| {
                for a in &docs.actions {
                    let el = w
                        .create_element("action")
                        .with_attribute(("name", a.as_str()));
                    let el = if *a == Action::On {
                        el.with_attribute(("automatic", "0"))
                    } else {
                        el
                    };
                    el.write_empty()?;
                }
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(())
}

fn write_parameter<W: io::Write>(w: &mut Writer<W>, e: &Entry<'_>) -> io::Result<()> {
    let p = e.param;
    let mut el = w
        .create_element("parameter")
        .with_attribute(("name", e.name))
        .with_attribute(("unique", "0"))
        .with_attribute(("required", if p.required { "1" } else { "0" }));
    if e.deprecated {
        el = el.with_attribute(("deprecated", "1"));
    }
    if let Some(old) = e.obsoletes {
        el = el.with_attribute(("obsoletes", old));
    }
    el.write_inner_content(|w| {
        let mixed = p.getopt_mixed();
        w.create_element("getopt")
            .with_attribute(("mixed", mixed.as_str()))
            .write_empty()?;
        let mut content = w
            .create_element("content")
            .with_attribute(("type", p.kind.metadata_type()));
        if let Some(d) = p.default {
            content = content.with_attribute(("default", d));
        }
        match p.kind {
            ParamKind::Select(choices) => {
                content.write_inner_content(|w| {
                    for c in choices {
                        w.create_element("option")
                            .with_attribute(("value", *c))
                            .write_empty()?;
                    }
                    Ok(())
                })?;
            }
            _ => {
                content.write_empty()?;
            }
        }
        w.create_element("shortdesc")
            .with_attribute(("lang", "en"))
            .write_text_content(BytesText::new(p.shortdesc))?;
        Ok(())
    })?;
    Ok(())
}

/// The `--help` text (fencing.py `usage()`): one line per parameter, by order.
pub fn usage(
    agent_name: &str,
    params: &[Param],
    actions: &[Action],
    default_action: &str,
) -> String {
    let mut out = format!("Usage:\n\t{agent_name} [options]\nOptions:\n");
    let mut sorted: Vec<&Param> = params.iter().filter(|p| p.in_metadata).collect();
    sorted.sort_by_key(|p| (p.order, p.name));
    for p in sorted {
        let mut text = p.shortdesc.to_string();
        if p.name == "action" {
            let names: Vec<String> = actions
                .iter()
                .map(|a| {
                    if a.as_str() == default_action {
                        format!("{a} (default)")
                    } else {
                        a.to_string()
                    }
                })
                .collect();
            text = format!("Action: {}", names.join(", "));
        } else if let ParamKind::Select(choices) = p.kind {
            text = format!("{text} ({})", choices.join("|"));
        }
        if let Some(d) = p.default {
            if p.name != "action" {
                text = format!("{text} (default: {d})");
            }
        }
        out.push_str(&format!("   {:<31}{}\n", p.getopt_mixed(), text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::param::std_params::*;

    #[test]
    fn deprecated_twins_sorted_like_fencing_py() {
        let params = [
            USERNAME, IP, ACTION, DEBUG_FILE, QUIET, USE_SUDO, SUDO_PATH, DELAY,
        ];
        let names: Vec<&str> = entries(&params).iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                "action",
                "ip",
                "ipaddr",
                "login",
                "username",
                "quiet",
                "debug",
                "debug_file",
                "delay",
                "sudo",
                "use_sudo",
                "sudo_path"
            ]
        );
    }

    #[test]
    fn xml_shape() {
        let docs = AgentDocs {
            name: "fence_x".into(),
            shortdesc: "Fence agent for \"X\" & co".into(),
            longdesc: "long <text>".into(),
            vendor_url: String::new(),
            symlinks: vec![("fence_y".into(), "Y".into())],
            actions: vec![Action::On, Action::Off],
        };
        let xml = render(&docs, &[IP, METHOD]);
        assert!(xml.starts_with("<?xml version=\"1.0\"?>\n<resource-agent name=\"fence_x\""));
        assert!(xml.contains("shortdesc=\"Fence agent for &quot;X&quot; &amp; co\""));
        assert!(xml.contains("<longdesc>long &lt;text&gt;</longdesc>"));
        assert!(xml
            .contains("<parameter name=\"ip\" unique=\"0\" required=\"0\" obsoletes=\"ipaddr\">"));
        assert!(xml
            .contains("<parameter name=\"ipaddr\" unique=\"0\" required=\"0\" deprecated=\"1\">"));
        assert!(xml.contains("<getopt mixed=\"-a, --ip=[ip]\"/>"));
        assert!(xml.contains("<content type=\"select\" default=\"onoff\">"));
        assert!(xml.contains("<option value=\"cycle\"/>"));
        assert!(xml.contains("<action name=\"on\" automatic=\"0\"/>"));
        assert!(xml.contains("<action name=\"off\"/>"));
        assert!(xml.ends_with("</resource-agent>\n"));
    }
}
