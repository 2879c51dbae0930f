//! IMAP input as a client could send it: framed into commands (literals, limits), then parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_proto_imap::{parse_command, Frame, Framer, Limits};

fuzz_target!(|data: &[u8]| {
    let mut framer = Framer::new(Limits { max_command: 4096, max_append: 65536 });
    // Feed in two pieces so that partial input is exercised too.
    let (a, b) = data.split_at(data.len() / 2);
    for piece in [a, b] {
        framer.push(piece);
        while let Some(frame) = framer.next_frame() {
            if let Frame::Command(command) = frame {
                let _ = parse_command(&command);
            }
        }
    }
    let _ = parse_command(data);
});
