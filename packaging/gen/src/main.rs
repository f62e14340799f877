//! packaging-gen: writes the packages' generated man pages and shell completions (thin: the
//! library renders, this reads and writes files). Called by `packaging/build.sh`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "packaging-gen",
    about = "Generate man pages and completions for the packages"
)]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// A fence agent's man page from its `-o metadata` XML.
    FenceMan {
        #[arg(long)]
        metadata: PathBuf,
        #[arg(long = "package-version")]
        version: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// An OCF agent's man page from its `meta-data` XML, with extra verbatim sections.
    OcfMan {
        #[arg(long)]
        metadata: PathBuf,
        #[arg(long = "package-version")]
        version: String,
        #[arg(long)]
        provider: String,
        /// `TITLE=FILE`: a section titled TITLE showing FILE verbatim (repeatable).
        #[arg(long)]
        section: Vec<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// hactl-kvm(8) and one page per subcommand, into a directory.
    CliMan {
        #[arg(long)]
        out: PathBuf,
    },
    /// Shell completions of hactl-kvm (bash, zsh, fish), into a directory.
    Completions {
        #[arg(long)]
        out: PathBuf,
    },
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, content: &[u8]) -> Result<(), String> {
    std::fs::write(path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn write_all(dir: &Path, files: &[packaging_gen::GeneratedFile]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for f in files {
        write(&dir.join(&f.name), &f.content)?;
    }
    Ok(())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.what {
        What::FenceMan {
            metadata,
            version,
            out,
        } => {
            let page = packaging_gen::fence_agent_page(&read(&metadata)?, &version)
                .map_err(|e| format!("{}: {e}", metadata.display()))?;
            write(&out, page.as_bytes())
        }
        What::OcfMan {
            metadata,
            version,
            provider,
            section,
            out,
        } => {
            let mut sections = Vec::new();
            for s in &section {
                let (title, file) = s
                    .split_once('=')
                    .ok_or_else(|| format!("--section {s:?}: expected TITLE=FILE"))?;
                sections.push((title.to_string(), read(Path::new(file))?));
            }
            let refs: Vec<(&str, &str)> = sections
                .iter()
                .map(|(t, c)| (t.as_str(), c.as_str()))
                .collect();
            let page = packaging_gen::ocf_agent_page(&read(&metadata)?, &version, &provider, &refs)
                .map_err(|e| format!("{}: {e}", metadata.display()))?;
            write(&out, page.as_bytes())
        }
        What::CliMan { out } => {
            let pages =
                packaging_gen::cli_pages(hactl_kvm_cli::command()).map_err(|e| e.to_string())?;
            write_all(&out, &pages)
        }
        What::Completions { out } => {
            write_all(&out, &packaging_gen::completions(hactl_kvm_cli::command()))
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("packaging-gen: {e}");
            ExitCode::from(1)
        }
    }
}
