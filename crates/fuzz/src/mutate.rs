//! The mutations a campaign applies to its seeds: bit flips, boundary
//! values written over the integers Kafka's formats are made of (int16,
//! int32, int64, varints), length fields nudged, byte ranges deleted,
//! inserted, duplicated and spliced from another seed, truncation. Each
//! execution stacks one to eight of them on one seed.

use crate::rng::Rng;

/// The largest input a mutation produces.
pub const MAX_INPUT_BYTES: usize = 256 << 10;

const BOUNDARY_I16: [i16; 8] = [0, 1, -1, 0x7f, 0xff, 0x100, i16::MAX, i16::MIN];
const BOUNDARY_I32: [i32; 10] = [
    0,
    1,
    -1,
    0x7f,
    0xffff,
    0x1_0000,
    1 << 24,
    i32::MAX,
    i32::MIN,
    -2,
];
const BOUNDARY_I64: [i64; 6] = [0, 1, -1, i64::MAX, i64::MIN, 1 << 40];

/// Applies one to eight mutations to `input`; `others` are other seeds to
/// splice from.
pub fn mutate(input: &mut Vec<u8>, others: &[Vec<u8>], rng: &mut Rng) {
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        mutate_once(input, others, rng);
    }
    input.truncate(MAX_INPUT_BYTES);
}

fn mutate_once(input: &mut Vec<u8>, others: &[Vec<u8>], rng: &mut Rng) {
    let len = input.len();
    let at = rng.below(len.max(1));
    match rng.below(13) {
        0 => {
            if let Some(b) = input.get_mut(at) {
                *b ^= 1 << rng.below(8);
            }
        }
        1 => {
            if let Some(b) = input.get_mut(at) {
                *b = rng.next_u64() as u8;
            }
        }
        2 => {
            if let Some(b) = input.get_mut(at) {
                *b = *rng.pick(&[0u8, 1, 0x7f, 0x80, 0xff]).unwrap_or(&0);
            }
        }
        3 => {
            let v = *rng.pick(&BOUNDARY_I16).unwrap_or(&0);
            overwrite(input, at, &v.to_be_bytes());
        }
        4 => {
            let v = *rng.pick(&BOUNDARY_I32).unwrap_or(&0);
            overwrite(input, at, &v.to_be_bytes());
        }
        5 => {
            let v = *rng.pick(&BOUNDARY_I64).unwrap_or(&0);
            overwrite(input, at, &v.to_be_bytes());
        }
        6 => {
            // A varint (compact lengths, record fields) of a boundary value.
            let v = *rng.pick(&BOUNDARY_I32).unwrap_or(&0) as u32;
            let mut bytes = Vec::new();
            put_unsigned_varint(&mut bytes, v);
            overwrite(input, at, &bytes);
        }
        7 => {
            // Nudge a byte: length fields a little off.
            if let Some(b) = input.get_mut(at) {
                let delta = 1 + rng.below(16) as u8;
                *b = if rng.one_in(2) {
                    b.wrapping_add(delta)
                } else {
                    b.wrapping_sub(delta)
                };
            }
        }
        8 => {
            let n = (1 + rng.below(16)).min(len - at.min(len));
            input.drain(at.min(len)..at.min(len) + n);
        }
        9 => {
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            let at = at.min(len);
            input.splice(at..at, bytes);
        }
        10 => {
            // Duplicate a range somewhere else (repeated array elements).
            if len > 0 {
                let start = rng.below(len);
                let n = 1 + rng.below((len - start).min(64));
                let chunk: Vec<u8> = input.get(start..start + n).unwrap_or(&[]).to_vec();
                let to = rng.below(len + 1);
                input.splice(to..to, chunk);
            }
        }
        11 => input.truncate(at),
        _ => {
            // Splice: this input's head, another seed's tail.
            if let Some(other) = rng.pick(others) {
                let from = rng.below(other.len().max(1));
                input.truncate(at);
                input.extend_from_slice(other.get(from..).unwrap_or(&[]));
            }
        }
    }
}

/// Writes `bytes` at `at`, as far as the input reaches.
fn overwrite(input: &mut [u8], at: usize, bytes: &[u8]) {
    for (slot, b) in input.iter_mut().skip(at).zip(bytes) {
        *slot = *b;
    }
}

fn put_unsigned_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_change_inputs_stay_bounded_and_replay_by_seed() {
        let seed = b"\x00\x03\x00\x0c\x00\x00\x00\x01\xff\xff\x00\x01\x00".to_vec();
        let others = vec![vec![0xaa; 40]];
        let run = |s: u64| {
            let mut rng = Rng::new(s);
            (0..200)
                .map(|_| {
                    let mut input = seed.clone();
                    mutate(&mut input, &others, &mut rng);
                    input
                })
                .collect::<Vec<_>>()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        assert!(a.iter().filter(|m| **m != seed).count() > 150);
        assert!(a.iter().all(|m| m.len() <= MAX_INPUT_BYTES));
        let mut empty = Vec::new();
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            mutate(&mut empty, &[], &mut rng);
            empty.truncate(64);
        }
    }
}
