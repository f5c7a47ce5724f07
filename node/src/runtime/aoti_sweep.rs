//! Folders that AOTInductor packages left behind.
//!
//! LibTorch's package loader unpacks each `.pt2` into a fresh
//! `/tmp/XXXXXX` folder (the path is fixed in LibTorch, not taken from
//! `TMPDIR`) and removes it when the model is dropped. A node that is killed
//! never drops its models, so its folders stay. A node sweeps them when it
//! starts: a folder is removed only when it has the shape of an unpacked
//! package, belongs to this user, is older than a grace period (a package
//! being unpacked right now is young), and no live process maps a file from
//! it (a package in use has its compiled model mapped).

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Where LibTorch unpacks packages.
pub const UNPACK_ROOT: &str = "/tmp";

/// How old a folder must be before it may be an orphan.
pub const GRACE: Duration = Duration::from_secs(120);

/// Removes the orphaned package folders under `root`, returning the folders
/// removed.
pub fn sweep_orphans(root: &Path, grace: Duration) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else { return Vec::new() };
    let candidates: Vec<PathBuf> =
        entries.flatten().map(|entry| entry.path()).filter(|path| looks_unpacked(path, grace)).collect();
    if candidates.is_empty() {
        return candidates;
    }
    let mapped = mapped_folders(root);
    let mut removed = Vec::new();
    for folder in candidates {
        if mapped.contains(&folder) {
            continue;
        }
        match fs::remove_dir_all(&folder) {
            Ok(()) => removed.push(folder),
            Err(error) => {
                tracing::warn!(folder = %folder.display(), %error, "could not remove an orphaned package folder")
            }
        }
    }
    removed
}

/// Whether `path` is a folder LibTorch made for a package: a six-character
/// name, this user's, older than `grace`, holding `<model>/data/aotinductor`.
fn looks_unpacked(path: &Path, grace: Duration) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    if name.len() != 6 || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let Ok(metadata) = fs::symlink_metadata(path) else { return false };
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    if !metadata.is_dir() || metadata.uid() != uid {
        return false;
    }
    let old_enough = metadata
        .modified()
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age >= grace);
    if !old_enough {
        return false;
    }
    let Ok(children) = fs::read_dir(path) else { return false };
    children.flatten().any(|child| child.path().join("data").join("aotinductor").is_dir())
}

/// The folders directly under `root` from which any process this user can
/// see has a file mapped.
fn mapped_folders(root: &Path) -> HashSet<PathBuf> {
    let mut folders = HashSet::new();
    let Ok(processes) = fs::read_dir("/proc") else { return folders };
    for process in processes.flatten() {
        let Ok(maps) = fs::read_to_string(process.path().join("maps")) else { continue };
        for line in maps.lines() {
            let Some(file) = line.split_whitespace().nth(5) else { continue };
            let Ok(rest) = Path::new(file).strip_prefix(root) else { continue };
            if let Some(first) = rest.components().next() {
                folders.insert(root.join(first));
            }
        }
    }
    folders
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder standing in for `/tmp`, removed when dropped.
    struct Root(PathBuf);

    impl Root {
        fn new(test: &str) -> Root {
            let path = std::env::temp_dir().join(format!("maas-sweep-{test}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            Root(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn unpacked(root: &Path, name: &str) -> PathBuf {
        let folder = root.join(name);
        fs::create_dir_all(folder.join("model/data/aotinductor/model")).unwrap();
        fs::write(folder.join("model/data/aotinductor/model/model.so"), b"not really").unwrap();
        folder
    }

    #[test]
    fn only_orphaned_package_folders_are_removed() {
        let root = Root::new("orphan");
        let orphan = unpacked(root.path(), "a1B2c3");
        let wrong_name = unpacked(root.path(), "model-folder");
        let unrelated = root.path().join("Zz9Yy8");
        fs::create_dir_all(unrelated.join("notes")).unwrap();

        let removed = sweep_orphans(root.path(), Duration::ZERO);

        assert_eq!(removed, vec![orphan.clone()]);
        assert!(!orphan.exists());
        assert!(wrong_name.exists(), "a folder without LibTorch's name shape stays");
        assert!(unrelated.exists(), "a folder that is not an unpacked package stays");
    }

    #[test]
    fn a_young_folder_may_be_unpacking_and_stays() {
        let root = Root::new("young");
        let young = unpacked(root.path(), "q7W8e9");
        assert!(sweep_orphans(root.path(), Duration::from_secs(3600)).is_empty());
        assert!(young.exists());
    }

    #[test]
    fn a_folder_mapped_by_a_live_process_stays() {
        let root = Root::new("mapped");
        let in_use = unpacked(root.path(), "m4N5b6");
        let file = fs::File::open(in_use.join("model/data/aotinductor/model/model.so")).unwrap();
        // SAFETY: a read-only private mapping of a file this test owns,
        // unmapped before the test ends.
        let mapping = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                10,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            )
        };
        assert_ne!(mapping, libc::MAP_FAILED);
        let removed = sweep_orphans(root.path(), Duration::ZERO);
        unsafe { libc::munmap(mapping, 10) };
        assert!(removed.is_empty(), "{removed:?}");
        assert!(in_use.exists());
    }
}
