//! IMAP input as a client could send it: framed into commands (literals, LITERAL+, limits),
//! then parsed. Framing must not depend on how the input was cut into reads: the frames from
//! everything at once and from reads of a fuzzed size are the same.
//!
//! Input: an options byte (bit 0: the client has logged in, so APPEND's literal may be big), a
//! chunk-size byte (0: a split in the middle), then what the client sends.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use portcullis_proto_imap::{parse_command, Frame, Framer, Limits};

// Small, so that inputs of the sizes libFuzzer makes reach them.
const LIMITS: Limits = Limits { max_command: 1024, max_append: 2048 };

fn frames(input: &[u8], chunk: usize, logged_in: bool) -> Vec<Frame> {
    let mut framer = Framer::new(LIMITS);
    if logged_in {
        framer.logged_in();
    }
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        framer.push(piece);
        while let Some(frame) = framer.next_frame() {
            out.push(frame);
        }
        assert!(framer.buffered() <= input.len());
    }
    // Nothing whole is left: what is held of an unfinished command is bounded.
    assert!(framer.buffered() <= LIMITS.max_command + LIMITS.max_append as usize, "{}", framer.buffered());
    out
}

fuzz_target!(|data: &[u8]| {
    let [options, chunk, input @ ..] = data else { return };
    let logged_in = options & 1 != 0;
    let whole = frames(input, input.len(), logged_in);
    let chunk = if *chunk == 0 { input.len().div_ceil(2) } else { *chunk as usize };
    let cut = frames(input, chunk, logged_in);
    assert_eq!(whole, cut, "framing depends on how the input was read");
    for frame in &whole {
        match frame {
            Frame::Command(command) => {
                assert!(command.ends_with(b"\n"));
                assert!(command.len() <= LIMITS.max_command + LIMITS.max_append as usize);
                if let Ok(parsed) = parse_command(command) {
                    let _ = format!("{parsed:?}");
                }
            }
            Frame::Refused { tag: Some(tag), .. } => assert!(!tag.is_empty() && tag.len() <= 64),
            _ => {}
        }
    }
    let _ = parse_command(input);
});
