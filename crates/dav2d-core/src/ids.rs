//! Newtype identifiers for the things a graph holds.
//!
//! Every id is a dense index into a vector owned by the graph, so lookups on
//! the hot path are array indexing rather than hashing.

macro_rules! dense_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub(crate) u32);

        impl $name {
            /// The dense index behind this id.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

dense_id!(
    /// A named stream: an input stream, a node's output or a constraint's state.
    StreamId
);
dense_id!(
    /// A node (native, custom or constraint) in topological order.
    NodeId
);
dense_id!(
    /// An interned key. Keys are interned once per graph.
    KeyId
);
