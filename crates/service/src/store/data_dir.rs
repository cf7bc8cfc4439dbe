//! Preparing the data dir with errors a new user can act on: a path that is (or runs through) a
//! file says so, and a dir that cannot be created or written says "permission denied" with the
//! setting to change, instead of a bare OS error.

use std::fs;
use std::io::{Error, ErrorKind};
use std::path::Path;

/// What to change, appended to every data dir error.
const HINT: &str = "choose another --data-dir / store.data_dir";

/// Creates `dir` if needed and proves it is a writable directory.
pub fn prepare(dir: &Path) -> Result<(), Error> {
    // The nearest existing ancestor (or the dir itself) must be a directory.
    if let Some(file) = dir.ancestors().find(|p| p.exists()).filter(|p| !p.is_dir()) {
        let what = if file == dir {
            "it is a file, not a directory".to_string()
        } else {
            format!("{} is a file, not a directory", file.display())
        };
        return Err(Error::new(
            ErrorKind::NotADirectory,
            format!("{what} ({HINT})"),
        ));
    }
    fs::create_dir_all(dir).map_err(|e| explain(e, "cannot create", dir))?;
    // Creating a file proves it is writable (the database and its WAL live here).
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    fs::write(&probe, b"").map_err(|e| explain(e, "cannot write in", dir))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

fn explain(e: Error, doing: &str, dir: &Path) -> Error {
    let why = match e.kind() {
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::ReadOnlyFilesystem => "read-only file system".to_string(),
        _ => e.to_string(),
    };
    Error::new(
        e.kind(),
        format!("{why}: {doing} {} ({HINT})", dir.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_in_the_way_is_named() {
        let base = std::env::temp_dir().join(format!("hftc-datadir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        let file = base.join("afile");
        fs::write(&file, b"x").unwrap();
        let e = prepare(&file).unwrap_err().to_string();
        assert!(e.starts_with("it is a file, not a directory"), "{e}");
        let e = prepare(&file.join("sub")).unwrap_err().to_string();
        assert!(e.contains(&format!("{} is a file", file.display())), "{e}");
        assert!(e.contains("--data-dir"), "{e}");
        prepare(&base.join("new/deeper")).expect("a new dir is created");
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn permission_errors_say_permission_denied() {
        let e = explain(
            Error::from(ErrorKind::PermissionDenied),
            "cannot create",
            Path::new("/x"),
        );
        assert_eq!(
            e.to_string(),
            format!("permission denied: cannot create /x ({HINT})")
        );
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    }
}
