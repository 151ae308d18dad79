pub mod chat;
pub mod doctor;
pub mod init;
pub mod serve;
pub mod status;
