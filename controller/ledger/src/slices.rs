//! The slice book: the pure half of the $0 overshoot bound on a gateway replica (what it was
//! granted, what calls in flight reserve, what it gives back), with time injected.
