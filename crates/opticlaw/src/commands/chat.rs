use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use opticlaw_core::{ResponseKind, ResponsePacket};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client::Client;
use crate::home::Home;

#[derive(clap::Args)]
pub struct Args {
    /// Conversation thread to talk in
    #[arg(long, default_value = "main")]
    thread: String,
    /// Send this one message, print the reply and exit
    #[arg(short, long)]
    message: Option<String>,
    /// After input ends, wait this long for outstanding replies
    #[arg(long, default_value_t = 10)]
    wait_secs: u64,
}

pub fn run(home: Option<&Path>, args: Args) -> Result<ExitCode> {
    let home = Home::locate(home)?;
    let client = Client::for_home(&home)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(chat(client, args))
}

async fn chat(client: Client, args: Args) -> Result<ExitCode> {
    let after = client.last_reply_seq(&args.thread).await?;
    let mut replies = Box::pin(client.stream(&args.thread, after).await?);
    let mut waiting: HashSet<String> = HashSet::new();
    let interactive = args.message.is_none() && is_terminal();
    if interactive {
        println!(
            "Connected to {} — thread \"{}\". Type /help, or /quit to leave.",
            client.base(),
            args.thread
        );
    }

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut pending_input: Vec<String> = args.message.clone().into_iter().collect();
    let mut input_open = args.message.is_none();
    prompt(interactive);
    loop {
        for text in pending_input.drain(..) {
            let submission = client.send(&args.thread, &text).await?;
            if let Some(id) = submission["event_id"].as_str() {
                waiting.insert(id.to_owned());
            }
        }
        if !input_open && waiting.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            line = lines.next_line(), if input_open => {
                match line.context("reading the terminal")? {
                    Some(line) if line.trim() == "/quit" || line.trim() == "/exit" => return Ok(ExitCode::SUCCESS),
                    Some(line) if line.trim().is_empty() => prompt(interactive),
                    Some(line) => pending_input.push(line),
                    None => input_open = false,
                }
            }
            reply = replies.next() => {
                let Some(reply) = reply else {
                    eprintln!("the daemon closed the connection");
                    return Ok(ExitCode::from(1));
                };
                let reply = reply?;
                if let Some(id) = &reply.in_reply_to {
                    waiting.remove(id);
                }
                show(&reply);
                prompt(interactive);
            }
            () = tokio::time::sleep(Duration::from_secs(args.wait_secs)), if !input_open => {
                eprintln!("no reply within {}s for {} message(s)", args.wait_secs, waiting.len());
                return Ok(ExitCode::from(1));
            }
        }
    }
}

fn show(reply: &ResponsePacket) {
    match reply.kind {
        ResponseKind::Reminder => println!("\n{}", reply.text),
        _ => println!("{}", reply.text),
    }
}

fn prompt(interactive: bool) {
    if interactive {
        print!("you> ");
        std::io::stdout().flush().ok();
    }
}

fn is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}
