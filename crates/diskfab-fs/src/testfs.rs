//! A tiny in-memory [`Filesystem`] for unit tests of the resolver and the tree walker.
//! Test-only: no permissions, no times, hard links allowed everywhere (also to directories,
//! so tests can build the loops a hostile image can contain).

use crate::types::*;
use crate::Filesystem;
use diskfab_storage::{Error, Result};
use std::collections::BTreeMap;

enum Node {
    Dir(Vec<(Vec<u8>, Ino)>),
    File(Vec<u8>),
    Link(Vec<u8>),
}

/// The in-memory filesystem: inode 1 is the root directory.
pub struct MemFs {
    nodes: BTreeMap<Ino, Node>,
    next: Ino,
}

impl MemFs {
    /// An empty filesystem (just `/`).
    pub fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(1, Node::Dir(Vec::new()));
        MemFs { nodes, next: 2 }
    }

    fn add(&mut self, dir: Ino, name: &[u8], node: Node) -> Ino {
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(ino, node);
        self.link_raw(dir, name, ino);
        ino
    }

    /// Adds entry `name` → `ino` to `dir` without any check (duplicates, `..`, `/` allowed).
    pub fn link_raw(&mut self, dir: Ino, name: &[u8], ino: Ino) {
        if let Some(Node::Dir(e)) = self.nodes.get_mut(&dir) {
            e.push((name.to_vec(), ino));
        }
    }

    /// Adds a directory.
    pub fn dir(&mut self, parent: Ino, name: &str) -> Ino {
        self.add(parent, name.as_bytes(), Node::Dir(Vec::new()))
    }

    /// Adds a regular file.
    pub fn file(&mut self, parent: Ino, name: &str, data: &[u8]) -> Ino {
        self.add(parent, name.as_bytes(), Node::File(data.to_vec()))
    }

    /// Adds a symlink.
    pub fn link(&mut self, parent: Ino, name: &str, target: &str) -> Ino {
        self.add(
            parent,
            name.as_bytes(),
            Node::Link(target.as_bytes().to_vec()),
        )
    }

    fn node(&self, ino: Ino) -> Result<&Node> {
        self.nodes
            .get(&ino)
            .ok_or_else(|| Error::NotFound(format!("inode {ino}")))
    }
}

fn ro<T>() -> Result<T> {
    Err(Error::ReadOnly("memfs is read-only".into()))
}

impl Filesystem for MemFs {
    fn info(&mut self) -> Result<FsInfo> {
        Err(Error::Unsupported("memfs".into()))
    }
    fn root(&self) -> Ino {
        1
    }
    fn lookup(&mut self, dir: Ino, name: &[u8]) -> Result<Option<Ino>> {
        match self.node(dir)? {
            Node::Dir(e) => Ok(e.iter().find(|(n, _)| n == name).map(|(_, i)| *i)),
            _ => Err(Error::Failed("not a directory".into())),
        }
    }
    fn getattr(&mut self, ino: Ino) -> Result<Metadata> {
        let (file_type, size) = match self.node(ino)? {
            Node::Dir(_) => (FileType::Directory, 0),
            Node::File(d) => (FileType::Regular, d.len() as u64),
            Node::Link(t) => (FileType::Symlink, t.len() as u64),
        };
        Ok(Metadata {
            ino,
            file_type,
            perm: 0o755,
            uid: 0,
            gid: 0,
            size,
            nlink: 1,
            atime: Timespec::default(),
            mtime: Timespec::default(),
            ctime: Timespec::default(),
            rdev: (0, 0),
            allocated: size,
        })
    }
    fn read_dir(&mut self, dir: Ino) -> Result<Vec<DirEntry>> {
        let entries = match self.node(dir)? {
            Node::Dir(e) => e.clone(),
            _ => return Err(Error::Failed("not a directory".into())),
        };
        entries
            .into_iter()
            .map(|(name, ino)| {
                let file_type = self.getattr(ino)?.file_type;
                Ok(DirEntry {
                    name,
                    ino,
                    file_type,
                })
            })
            .collect()
    }
    fn read_link(&mut self, ino: Ino) -> Result<Vec<u8>> {
        match self.node(ino)? {
            Node::Link(t) => Ok(t.clone()),
            _ => Err(Error::Invalid("not a symlink".into())),
        }
    }
    fn read(&mut self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize> {
        match self.node(ino)? {
            Node::File(d) => {
                let start = (offset as usize).min(d.len());
                let n = buf.len().min(d.len() - start);
                buf[..n].copy_from_slice(&d[start..start + n]);
                Ok(n)
            }
            _ => Err(Error::Invalid("not a file".into())),
        }
    }
    fn create(&mut self, _: Ino, _: &[u8], _: &NewNode) -> Result<Ino> {
        ro()
    }
    fn write(&mut self, _: Ino, _: u64, _: &[u8]) -> Result<()> {
        ro()
    }
    fn set_attr(&mut self, _: Ino, _: &SetAttr) -> Result<()> {
        ro()
    }
    fn mkdir(&mut self, _: Ino, _: &[u8], _: &NewNode) -> Result<Ino> {
        ro()
    }
    fn unlink(&mut self, _: Ino, _: &[u8]) -> Result<()> {
        ro()
    }
    fn rmdir(&mut self, _: Ino, _: &[u8]) -> Result<()> {
        ro()
    }
    fn rename(&mut self, _: Ino, _: &[u8], _: Ino, _: &[u8]) -> Result<()> {
        ro()
    }
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
}
