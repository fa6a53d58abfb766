//! The man pages, generated from the command-line definition ([`crate::cli`]) with
//! clap_mangen: `floorwatch.1` and `floorwatch-<command>.1` for each visible command. The
//! Debian package runs the hidden `floorwatch man DIR` at build time (`scripts/package`), so
//! the pages always say what the binary does.
//!
//! Must not: be needed at run time (nothing reads the pages).

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

/// Writes the pages into `dir` (created if missing).
pub fn write_pages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cmd = crate::cli::Cli::command();
    write_page(dir, "floorwatch", cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("floorwatch-{}", sub.get_name());
        let page = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("floorwatch {}", sub.get_name()));
        write_page(dir, &name, page)?;
    }
    Ok(())
}

fn write_page(dir: &Path, name: &str, cmd: clap::Command) -> anyhow::Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .source(concat!("floorwatch ", env!("CARGO_PKG_VERSION")))
        .manual("floorwatch manual")
        .render(&mut out)
        .with_context(|| format!("cannot render {name}(1)"))?;
    std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_visible_command_gets_a_page_and_the_hidden_one_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        super::write_pages(dir.path()).expect("pages");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(names.contains(&"floorwatch.1".to_string()), "{names:?}");
        assert!(names.contains(&"floorwatch-run.1".to_string()), "{names:?}");
        assert!(
            names.contains(&"floorwatch-check-store.1".to_string()),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n == "floorwatch-man.1"), "{names:?}");
        let page = std::fs::read_to_string(dir.path().join("floorwatch-run.1")).expect("read");
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
        assert!(page.contains("config"), "{page}");
    }
}
