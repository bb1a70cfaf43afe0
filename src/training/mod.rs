//! Training: the progressive SSL iteration, fine-tuning, linear probing, optimizers and learning-rate schedules. Sits above `model` and `ops`; talks to the backend only through them and [`crate::params`].

pub mod checkpoint;
pub mod epochs;
pub mod finetune;
pub mod knn;
pub mod optim;
pub mod phases;
pub mod probe;
pub mod schedule;
pub mod ssl;
