//! Apache suEXEC's file checks, for a `[[cgi]]` mount with `suexec = true`: a script that
//! anyone but its owner could have changed is not run. It must not be setuid or setgid,
//! neither it nor its directory may be writable by group or others, and both must belong
//! to the user scripts run as (`user`, else whoever Portico runs as). Each refusal is a
//! 403 naming the rule, in the access line as in the error.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::config::Config;
use crate::error::Error;

/// The user a suEXEC mount's scripts must belong to.
pub fn owner(config: &Config) -> u32 {
    config
        .run_as
        .as_ref()
        .map_or_else(|| nix::unistd::geteuid().as_raw(), |run_as| run_as.uid)
}

/// Checks `script` (its metadata already read, links followed) and its directory.
pub fn check(script: &Path, meta: &std::fs::Metadata, owner: u32) -> Result<(), Error> {
    let mode = meta.permissions().mode();
    if mode & 0o6000 != 0 {
        return Err(Error::Forbidden("suexec: the script is setuid or setgid"));
    }
    if mode & 0o022 != 0 {
        return Err(Error::Forbidden(
            "suexec: the script is writable by group or others",
        ));
    }
    if meta.uid() != owner {
        return Err(Error::Forbidden(
            "suexec: the script belongs to another user",
        ));
    }
    let dir = script
        .parent()
        .and_then(|dir| std::fs::metadata(dir).ok())
        .ok_or(Error::Forbidden("suexec: the directory cannot be read"))?;
    if dir.permissions().mode() & 0o022 != 0 {
        return Err(Error::Forbidden(
            "suexec: the directory is writable by group or others",
        ));
    }
    if dir.uid() != owner {
        return Err(Error::Forbidden(
            "suexec: the directory belongs to another user",
        ));
    }
    Ok(())
}
