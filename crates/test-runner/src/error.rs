//! The one error type of this crate.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: invalid filterset `{expr}`\n{rendered}")]
    Filterset {
        what: String,
        expr: String,
        rendered: String,
    },
    #[error(
        "`{unknown}` is not a member of the workspace (members: {members}); name a member, or add the package to [workspace] members"
    )]
    NotMembers { unknown: String, members: String },
    #[error("cannot read the workspace's package graph: {0}")]
    Metadata(String),
    #[error(".config/nextest.toml: {0}")]
    NextestConfig(String),
    #[error("cannot read or write {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a nextest JUnit report: {detail}")]
    Junit { path: String, detail: String },
    #[error(transparent)]
    Process(#[from] process::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
