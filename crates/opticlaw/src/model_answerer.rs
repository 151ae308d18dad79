//! The model path: answers what no rule can through the model router.
