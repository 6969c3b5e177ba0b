//! File access through short-lived execs as the container's own user (outside the persistent
//! shell, so its state and output are untouched): a checked `head -c` to read, base64 chunks
//! to write.
//!
//! The same rules as the local backend's host-side access (issue 13): regular files only
//! (`/proc`, `/sys`, `/dev`, FIFOs, devices and sockets are refused by the script, after
//! symlinks), at most `Limits::file_io_bytes` read or written, and no exec may outlive
//! `Limits::file_io_timeout` (a FIFO swapped in after the check makes `timeout` end it). The
//! scripts run the container's own programs, which the agent may have replaced, so the host
//! also caps what it takes in (`Daemon::run_bounded`): the checks in here are for clear
//! errors, the caps on the host side are the guarantee.

/// Refuses anything but a regular file outside /proc, /sys and /dev (after symlinks); an
/// absent file is refused only when `$must_exist` is 1.
const CHECK: &str = r#"f=$1; must_exist=$2
case "$(readlink -m -- "$f")" in
  /proc|/proc/*|/sys|/sys/*|/dev|/dev/*)
    echo "the file tools do not touch /proc, /sys or /dev (the kernel's or the devices' files)" >&2; exit 97;;
esac
if [ -e "$f" ] || [ -L "$f" ]; then
  [ -f "$f" ] || { echo "is not a regular file (a directory, FIFO, device, socket or dangling link); the file tools read and write regular files only" >&2; exit 97; }
elif [ "$must_exist" = 1 ]; then
  echo "no such file or directory" >&2; exit 97
fi
"#;

/// The exec command that prints at most `max + 1` bytes of the file at `abs` on stdout (one
/// more than allowed, so that the caller can tell a file that is too large).
pub(crate) fn read_command(abs: &str, max: u64, secs: u64) -> Vec<String> {
    let script = format!(
        "{CHECK}exec timeout -s KILL {secs} head -c {} -- \"$f\"",
        max + 1
    );
    vec![
        "/bin/sh".into(),
        "-c".into(),
        script,
        "sh".into(),
        abs.to_string(),
        "1".into(),
    ]
}

/// The exec commands that write `contents` to `abs`: chunks travel base64-encoded as an
/// argument (below the kernel's 128 KiB limit per argument); the first chunk truncates the
/// file, the rest append. An empty file still gets one (truncating) command.
pub(crate) fn write_commands(abs: &str, contents: &[u8], secs: u64) -> Vec<Vec<String>> {
    let mut chunks: Vec<&[u8]> = contents.chunks(64 * 1024).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let redirect = if i == 0 { ">" } else { ">>" };
            let script = format!(
                "{CHECK}printf %s \"$3\" | base64 -d | timeout -s KILL {secs} sh -c 'cat {redirect} \"$1\"' sh \"$f\""
            );
            vec![
                "/bin/sh".into(),
                "-c".into(),
                script,
                "sh".into(),
                abs.to_string(),
                "0".into(),
                base64(chunk),
            ]
        })
        .collect()
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_files_are_split_below_the_argument_limit() {
        let cmds = write_commands("/t/f", &vec![7u8; 200_000], 30);
        assert_eq!(cmds.len(), 4);
        assert!(cmds[0][2].contains("cat > ") && cmds[1][2].contains("cat >> "));
        assert!(cmds
            .iter()
            .all(|c| c[6].len() < 128 * 1024 && c[4] == "/t/f" && c[5] == "0"));
        assert_eq!(write_commands("/t/e", b"", 30).len(), 1);
        assert_eq!(read_command("/t/f", 10, 30)[5], "1");
    }

    #[test]
    fn base64_matches_the_rfc_examples() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
