//! The payload of one replicated entry: one WAL-encoded command, or a batch of
//! them proposed together (group commit at the Raft level: one log append, one
//! fdatasync and one replication round for every write waiting at that moment).
//!
//! A single command is its WAL encoding as is, so entries written before
//! batching read unchanged. A batch starts with a zero byte, which no WAL
//! encoding starts with (it is a protobuf message with a command, and field
//! number 0 does not exist), then the number of commands as a little-endian
//! `u32`, then each command as a little-endian `u32` length and its bytes.

/// First byte of a batch.
const BATCH_MARK: u8 = 0;

/// Encodes `commands` (WAL encodings) as one entry payload.
pub fn encode<'a>(commands: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut commands = commands.peekable();
    if commands.len() == 1 {
        return commands.next().map(<[u8]>::to_vec).unwrap_or_default();
    }
    let mut out = Vec::with_capacity(1 + commands.len() * 132);
    out.push(BATCH_MARK);
    out.extend_from_slice(&(commands.len() as u32).to_le_bytes());
    for c in commands {
        out.extend_from_slice(&(c.len() as u32).to_le_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// The commands of an entry payload, in order; a damaged batch yields an
/// error where its damage starts and nothing after it.
pub fn commands(payload: &[u8]) -> Commands<'_> {
    match payload.first() {
        Some(&BATCH_MARK) => match payload.get(1..5) {
            Some(n) => {
                Commands { rest: &payload[5..], left: u32::from_le_bytes([n[0], n[1], n[2], n[3]]), single: false }
            }
            None => Commands { rest: &payload[1..], left: 1, single: false },
        },
        _ => Commands { rest: payload, left: 1, single: true },
    }
}

/// Iterator over the commands of an entry payload (see [`commands`]).
pub struct Commands<'a> {
    rest: &'a [u8],
    /// Commands still to come, as the batch says.
    left: u32,
    single: bool,
}

/// A batch payload cut short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a batch of commands cut short: {0} bytes left that are not a whole command")]
pub struct DamagedBatch(pub usize);

impl<'a> Iterator for Commands<'a> {
    type Item = Result<&'a [u8], DamagedBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.single {
            self.single = false;
            self.left = 0;
            let all = std::mem::take(&mut self.rest);
            return Some(Ok(all));
        }
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let left = self.rest.len();
        let item = self
            .rest
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .and_then(|len| self.rest.get(4..4 + len).map(|c| (c, 4 + len)));
        match item {
            Some((command, used)) => {
                self.rest = &self.rest[used..];
                Some(Ok(command))
            }
            None => {
                self.rest = &[];
                self.left = 0;
                Some(Err(DamagedBatch(left)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(commands_in: &[&[u8]]) -> Vec<Vec<u8>> {
        let payload = encode(commands_in.iter().copied());
        commands(&payload).map(|c| c.expect("whole").to_vec()).collect()
    }

    #[test]
    fn one_command_is_its_encoding_as_is_and_reads_back() {
        let one: &[u8] = &[0x0a, 1, 2, 3];
        assert_eq!(encode([one].into_iter()), one.to_vec());
        assert_eq!(round_trip(&[one]), vec![one.to_vec()]);
    }

    #[test]
    fn a_batch_reads_back_in_order() {
        let a: &[u8] = &[0x0a, 1];
        let b: &[u8] = &[0x08, 2, 3, 4];
        let c: &[u8] = &[];
        assert_eq!(round_trip(&[a, b, c]), vec![a.to_vec(), b.to_vec(), c.to_vec()]);
        assert_eq!(round_trip(&[]), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn a_cut_batch_yields_its_whole_commands_then_one_error() {
        let a: &[u8] = &[0x0a, 1];
        let b: &[u8] = &[0x08, 2, 3, 4];
        let payload = encode([a, b].into_iter());
        for cut in 1..payload.len() {
            let read: Vec<_> = commands(&payload[..cut]).collect();
            let whole = read.iter().filter(|r| r.is_ok()).count();
            assert!(whole <= 1, "cut at {cut}: {read:?}");
            assert!(matches!(read.last(), Some(Err(_))), "cut at {cut}: {read:?}");
        }
    }
}
