//! The shell scripts the scrub runs inside a container, and the one way to run them: checked,
//! so that a script that fails, times out, or whose output is cut short or lacks its end
//! marker is an error, never a partial answer.
//!
//! They run as the container's user with `/bin/sh` and the image's `ls`, `rm`, `chmod` and
//! `cksum`, under a fixed `PATH` and `LC_ALL=C`. A client that replaced one of those shows up in
//! the engine's diff, which is read first (see `scrub.rs`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::Docker;
use warmpool_core::{BackendError, ExecRequest};

use crate::exec::run_script;

/// Docker's default `PATH`: the scripts never run a program from a client's directory.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Prints what the scrub reads from inside: the container's clock (ticks since boot are
/// `/proc/uptime` × 100), its mount table, its SysV IPC objects, then per argument:
/// `L:PATH` a place's own entry and its recursive listing, `D:PATH` one entry, `F:PATH` a
/// file's checksum (`cksum`, else `sha256sum` or `md5sum`: Debian's busybox has no `cksum`). Each section starts `== NAME`; the output ends `== end`; any step that
/// fails makes the exit code non-zero.
pub const INSPECT: &str = r#"rc=0
echo "== uptime"; { read -r u _ && echo "$u"; } < /proc/uptime || rc=1
echo "== mounts"; { while IFS= read -r l; do printf '%s\n' "$l"; done; } < /proc/self/mountinfo || rc=1
echo "== ipc"
for k in shm msg sem; do
  { read -r _ && while IFS= read -r l; do printf '%s %s\n' "$k" "$l"; done; } < "/proc/sysvipc/$k" || rc=1
done
for a in "$@"; do
  p=${a#?:}
  echo "== $a"
  case $a in
    L:*) ls -lnd "$p" || rc=1
         if [ -d "$p" ] && [ ! -L "$p" ]; then ls -lnAR "$p" || rc=1; fi;;
    D:*) ls -lnd "$p" || rc=1;;
    F:*) if [ -f "$p" ] && [ ! -L "$p" ]; then
           { cksum "$p" || sha256sum "$p" || md5sum "$p"; } 2>/dev/null </dev/null || rc=1
         else rc=1; fi;;
    *) rc=1;;
  esac
done
echo "== end"
exit $rc"#;

/// The image's directories, for the index of their modes and owners: `/` itself, then each
/// top-level directory that is not a mount point given as an argument, each after `== top`.
/// A directory the container's user cannot read is left out: that user cannot change what is
/// inside it either, and a changed directory missing from the index counts as residue.
pub const INDEX: &str = r#"ls -lnd / || exit 1
for d in /* /.[!.]* /..?*; do
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  skip=; for m in "$@"; do [ "$d" = "$m" ] && skip=1; done
  [ -n "$skip" ] && continue
  echo "== top"; ls -lnd "$d"; ls -lnAR "$d" 2>/dev/null
done
echo "== end""#;

/// Kills every process started after the baseline (its start time, in clock ticks since boot,
/// is above `$1`), in up to five rounds so that a process forking meanwhile is caught; then
/// empties each place given as `MODE:PATH`: its own mode put back (a client may have made it
/// unreadable), each directory in it opened to its owner, everything removed, and checked
/// empty. PID 1, the script and its own children are spared. Anything it cannot empty makes
/// the exit code non-zero. (The killer is a function: its `set --` must not touch the
/// script's own arguments.)
pub const SCRUB: &str = r#"me=$$; rc=0
kill_after() {
  for round in 1 2 3 4 5; do
    left=0
    for d in /proc/[0-9]*; do
      p=${d#/proc/}; [ "$p" = 1 ] && continue; [ "$p" = "$me" ] && continue
      read -r s < "$d/stat" 2>/dev/null || continue
      s=${s##*) }; set -- $s; sid=$4; shift 19; start=$1
      [ "$sid" = "$me" ] && continue
      [ "$start" -gt "$T" ] || continue
      kill -9 "$p" 2>/dev/null && left=1
    done
    [ $left = 0 ] && break
  done
}
T=$1; shift
kill_after
opened() {
  for e in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    if [ -d "$e" ] && [ ! -L "$e" ]; then chmod u+rwx "$e" 2>/dev/null; opened "$e"; fi
  done
}
for a in "$@"; do
  mode=${a%%:*}; m=${a#*:}
  chmod "$mode" "$m" 2>/dev/null
  opened "$m"
  rm -rf "$m"/* "$m"/.[!.]* "$m"/..?* 2>/dev/null
  if left=$(ls -A "$m"); then
    [ -z "$left" ] || { echo "cannot empty $m: $left" >&2; rc=1; }
  else
    echo "cannot list $m" >&2; rc=1
  fi
done
exit $rc"#;

/// Output a script may print before it counts as cut short.
pub const SMALL: usize = 4 << 20;
/// Output the directory index may print (a large image lists every entry once).
pub const LARGE: usize = 64 << 20;
const TIMEOUT: Duration = Duration::from_secs(60);

/// Run `script` with `args` in container `id`, and return what it printed. Any sign that the
/// answer is incomplete is an error naming `stage`: a non-zero exit, a timeout, output cut at
/// `limit`, or a missing `== end` line when `marked`.
pub async fn checked(
    docker: &Docker,
    id: &str,
    stage: &'static str,
    script: &str,
    args: &[String],
    limit: usize,
    marked: bool,
) -> Result<String, BackendError> {
    let mut cmd = vec![
        "/bin/sh".to_string(),
        "-c".into(),
        script.into(),
        "warmpool".into(),
    ];
    cmd.extend(args.iter().cloned());
    let req = ExecRequest {
        cmd,
        timeout: TIMEOUT,
        output_limit: limit,
        env: BTreeMap::from([
            ("PATH".to_string(), PATH.to_string()),
            ("LC_ALL".to_string(), "C".to_string()),
        ]),
        ..Default::default()
    };
    let out = run_script(docker, id, &req).await?;
    let fail = |message: String| BackendError::Operation {
        stage,
        container: id.into(),
        message,
    };
    if out.timed_out {
        return Err(fail(format!("did not finish within {TIMEOUT:?}")));
    }
    if out.truncated {
        return Err(fail(format!("printed more than {limit} bytes")));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.exit_code != Some(0) {
        return Err(fail(format!(
            "exited {:?}: {}",
            out.exit_code,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if marked && !text.lines().any(|l| l == "== end") {
        return Err(fail("its output ended early".into()));
    }
    Ok(text)
}

/// The sections of [`INSPECT`]'s output, by name (`uptime`, `mounts`, `ipc`, `L:/dev`, …). A
/// name seen twice is an error: a file whose name forges a section header (a name may hold a
/// newline) cannot pass for the script's own output.
pub fn sections(text: &str) -> Result<HashMap<String, String>, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    let mut name: Option<String> = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("== ") {
            if out.insert(n.to_string(), String::new()).is_some() {
                return Err(format!("the section {n:?} appears twice"));
            }
            name = Some(n.to_string());
            continue;
        }
        if let Some(n) = &name {
            let s = out.entry(n.clone()).or_default();
            s.push_str(line);
            s.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::sections;

    #[test]
    fn sections_by_name() {
        let s = sections("== uptime\n12.5\n== mounts\na\nb\n== L:/dev\nx\n== end\n").unwrap();
        assert_eq!(s["uptime"], "12.5\n");
        assert_eq!(s["mounts"], "a\nb\n");
        assert_eq!(s["L:/dev"], "x\n");
        assert!(s.contains_key("end"));
        assert!(sections("== L:/dev\nx\n== end\n== end\n").is_err());
    }
}
