//! A load generator's progress callback: the library hands a snapshot of its figures to it once
//! a second and prints nothing; the binary decides whether and how to draw a progress line.

use std::sync::Arc;

/// A callback that hears snapshots of type `P`, from whichever thread or task runs the load.
pub struct OnProgress<P>(Arc<dyn Fn(&P) + Send + Sync>);

impl<P> OnProgress<P> {
    pub fn new(f: impl Fn(&P) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Hands `snapshot` to the callback.
    pub fn call(&self, snapshot: &P) {
        (self.0)(snapshot);
    }
}

// By hand: a derive would ask `P: Clone` and `P: Debug`, which the callback does not need.
impl<P> Clone for OnProgress<P> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<P> std::fmt::Debug for OnProgress<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnProgress(..)")
    }
}
