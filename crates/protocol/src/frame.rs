//! Size-prefixed frames: every Kafka request and response is a big-endian
//! `int32` byte count followed by that many bytes.
//!
//! [`split_frame`] looks at a receive buffer and either returns one whole
//! frame, says more bytes are needed, or rejects the frame. The declared size
//! is checked against the caller's `max_frame_bytes` (Kafka's
//! `socket.request.max.bytes`) *before* the caller reserves room for the body,
//! so a peer cannot make the broker allocate by lying about a size.

use bytes::{Buf, BytesMut};
use thiserror::Error;

/// Bytes of the size prefix in front of every frame.
pub const FRAME_SIZE_PREFIX_BYTES: usize = 4;

/// A request smaller than this cannot even hold api key, version and
/// correlation id.
pub const MIN_REQUEST_FRAME_BYTES: usize = 8;

/// Why a frame is refused. Each of these ends the connection it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The size prefix is negative.
    #[error("frame size {0} is negative")]
    NegativeSize(i32),
    /// The size prefix exceeds the configured maximum.
    #[error("frame size {size} exceeds socket.request.max.bytes={max_frame_bytes}")]
    TooLarge {
        /// Declared size.
        size: usize,
        /// Configured maximum.
        max_frame_bytes: usize,
    },
    /// The frame is too small to hold a request header.
    #[error("frame size {0} is smaller than a request header")]
    TooSmall(usize),
}

/// What the receive buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameStatus {
    /// A whole frame body (without the size prefix).
    Frame(BytesMut),
    /// More bytes are needed: at least this many in total in the buffer.
    NeedBytes(usize),
}

/// Takes one frame off the front of `buf` if it is all there.
///
/// On [`FrameStatus::NeedBytes`] the buffer is untouched; the value is the
/// number of bytes the buffer must hold for the frame to be complete, already
/// checked against `max_frame_bytes`.
pub fn split_frame(buf: &mut BytesMut, max_frame_bytes: usize) -> Result<FrameStatus, FrameError> {
    let Some(prefix) = buf
        .get(..FRAME_SIZE_PREFIX_BYTES)
        .and_then(|p| <[u8; FRAME_SIZE_PREFIX_BYTES]>::try_from(p).ok())
    else {
        return Ok(FrameStatus::NeedBytes(FRAME_SIZE_PREFIX_BYTES));
    };
    let declared = i32::from_be_bytes(prefix);
    let size = usize::try_from(declared).map_err(|_| FrameError::NegativeSize(declared))?;
    if size > max_frame_bytes {
        return Err(FrameError::TooLarge {
            size,
            max_frame_bytes,
        });
    }
    if size < MIN_REQUEST_FRAME_BYTES {
        return Err(FrameError::TooSmall(size));
    }
    let total = FRAME_SIZE_PREFIX_BYTES + size;
    if buf.len() < total {
        return Ok(FrameStatus::NeedBytes(total));
    }
    buf.advance(FRAME_SIZE_PREFIX_BYTES);
    Ok(FrameStatus::Frame(buf.split_to(size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.extend_from_slice(&(body.len() as i32).to_be_bytes());
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn whole_frame_is_split_off_and_rest_kept() {
        let mut buf = framed(b"abcdefgh");
        buf.extend_from_slice(&[0, 0]);
        let status = split_frame(&mut buf, 100).unwrap();
        assert_eq!(status, FrameStatus::Frame(BytesMut::from(&b"abcdefgh"[..])));
        assert_eq!(&buf[..], &[0, 0]);
    }

    #[test]
    fn partial_frames_ask_for_more() {
        let mut buf = BytesMut::from(&[0u8, 0][..]);
        assert_eq!(
            split_frame(&mut buf, 100).unwrap(),
            FrameStatus::NeedBytes(4)
        );
        let mut buf = framed(b"abcdefgh");
        buf.truncate(7);
        assert_eq!(
            split_frame(&mut buf, 100).unwrap(),
            FrameStatus::NeedBytes(12)
        );
        assert_eq!(buf.len(), 7);
    }

    #[test]
    fn bad_sizes_are_refused_before_the_body_arrives() {
        let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(
            split_frame(&mut buf, 100),
            Err(FrameError::NegativeSize(-1))
        );
        let mut buf = BytesMut::from(&(101i32).to_be_bytes()[..]);
        assert_eq!(
            split_frame(&mut buf, 100),
            Err(FrameError::TooLarge {
                size: 101,
                max_frame_bytes: 100
            })
        );
        let mut buf = BytesMut::from(&(3i32).to_be_bytes()[..]);
        assert_eq!(split_frame(&mut buf, 100), Err(FrameError::TooSmall(3)));
    }
}
