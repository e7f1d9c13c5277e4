//! Buffers that many streams send from, known by their address, so that
//! write batching can send a slice of one by reference instead of copying
//! it.
//!
//! HTTP/2 lends the writer each frame's bytes as `&[u8]`, whoever owns
//! them. A buffer registered here is held while it is registered, so no
//! other allocation can lie at its addresses: a lent slice that lies
//! within it is part of it, and the same bytes can be taken from it by
//! reference ([`find`]).

use std::sync::RwLock;

use bytes::Bytes;

/// Every buffer registered, in no order: a framing for each greeting
/// length kept (see [`super::Framings`]), within the framings' budget.
static REGISTERED: RwLock<Vec<Bytes>> = RwLock::new(Vec::new());

/// A buffer, registered for as long as this lives.
#[derive(Debug)]
pub(crate) struct Registered(Bytes);

impl Registered {
    /// Registers `bytes` until the value returned is dropped.
    pub(crate) fn new(bytes: Bytes) -> Self {
        if !bytes.is_empty() {
            let mut registered = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
            registered.push(bytes.clone());
        }
        Self(bytes)
    }

    /// The bytes registered.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.0
    }
}

impl Registered {
    /// Takes the bytes off the registry: [`find`] no longer finds them,
    /// and they are held only here and by the slices taken before.
    pub(crate) fn deregister(&self) {
        if self.0.is_empty() {
            return;
        }
        let mut registered = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = registered
            .iter()
            .position(|b| b.as_ptr() == self.0.as_ptr() && b.len() == self.0.len())
        {
            registered.swap_remove(i);
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.deregister();
    }
}

/// `slice` as a reference into the registered buffer it lies in, if any.
pub(crate) fn find(slice: &[u8]) -> Option<Bytes> {
    let start = slice.as_ptr() as usize;
    let end = start + slice.len();
    let registered = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    registered.iter().find_map(|bytes| {
        let at = bytes.as_ptr() as usize;
        (at <= start && end <= at + bytes.len()).then(|| bytes.slice_ref(slice))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_of_a_registered_buffer_is_found_while_it_is_registered() {
        let bytes = Bytes::from((0..=255u8).collect::<Vec<_>>());
        let inside = &bytes[10..20];
        assert!(find(inside).is_none(), "not registered yet");
        let registered = Registered::new(bytes.clone());
        let found = find(inside).expect("found");
        assert_eq!(found, inside);
        assert_eq!(found.as_ptr(), inside.as_ptr(), "by reference");
        assert_eq!(find(&bytes[..]).expect("whole").len(), 256);
        // A copy, and a slice reaching past the end, are not it.
        let copy = inside.to_vec();
        assert!(find(&copy).is_none());
        let longer = Bytes::from(vec![0; 512]);
        let past = Registered::new(longer.slice(..256));
        assert!(find(&longer[200..300]).is_none());
        drop(past);
        drop(registered);
        assert!(find(inside).is_none(), "no longer registered");
    }
}
