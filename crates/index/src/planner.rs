//! Filter-aware search planner. (Stub: filled in by issue 3.)
