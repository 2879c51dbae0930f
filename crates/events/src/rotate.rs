//! A log file that rotates by size: when the next line would take `portcullis.log` past
//! `max_size`, it becomes `portcullis.log.1` (the older ones move up to `.2` ... `.keep`, the
//! oldest is deleted) and a new file is started. A line is never split across two files.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct RotatingFile {
    path: PathBuf,
    max_size: u64,
    keep: u32,
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Opens (appending to) `path`, created with mode 0600 if it does not exist.
    pub fn open(path: &Path, max_size: u64, keep: u32) -> io::Result<RotatingFile> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile { path: path.to_path_buf(), max_size: max_size.max(1), keep, file, size })
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            std::fs::remove_file(&self.path).or_else(ignore_missing)?;
        } else {
            std::fs::remove_file(self.rotated(self.keep)).or_else(ignore_missing)?;
            for n in (1..self.keep).rev() {
                std::fs::rename(self.rotated(n), self.rotated(n + 1)).or_else(ignore_missing)?;
            }
            std::fs::rename(&self.path, self.rotated(1)).or_else(ignore_missing)?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

impl Write for RotatingFile {
    /// Writes `buf` whole (the log writer hands over one line at a time).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_size {
            // Rotation failing (a full disk, a vanished directory) must not stop logging to
            // the file we have.
            let _ = self.rotate();
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_whole_lines() {
        let dir = std::env::temp_dir().join(format!("portcullis-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.log");
        let mut log = RotatingFile::open(&path, 100, 2).unwrap();
        for i in 0..20 {
            log.write_all(format!("line {i:02} ........................\n").as_bytes()).unwrap();
        }
        log.flush().unwrap();
        let current = std::fs::read_to_string(&path).unwrap();
        let one = std::fs::read_to_string(dir.join("p.log.1")).unwrap();
        let two = std::fs::read_to_string(dir.join("p.log.2")).unwrap();
        assert!(!dir.join("p.log.3").exists(), "only `keep` old files are kept");
        for text in [&current, &one, &two] {
            assert!(text.len() <= 100, "{text}");
            assert!(text.lines().all(|l| l.starts_with("line ") && l.ends_with('.')));
        }
        assert!(current.ends_with("line 19 ........................\n"));
        assert!(one.ends_with("line 17 ........................\n"), "{one}");
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
