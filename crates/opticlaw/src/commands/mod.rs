pub mod chat;
pub mod doctor;
pub mod init;
pub mod models;
pub mod pairing;
pub mod serve;
pub mod status;
pub mod triage;
