//! `loadtest`: load tests of rs-cms with a correctness verdict and a latency
//! report. See `docs/loadtest.md`.
//!
//! # Layout
//! - `cli`: the arguments;
//! - `scenario`: what each subcommand prepares, drives and checks;
//! - `prepare`: buyers, admin, addresses, seckill events and a catalog of
//!   listed, stocked products;
//! - `client`: targets, the pooled HTTP client, the request kinds;
//! - `drive`: client threads, closed and open loops;
//! - `outcome`: classifying answers;
//! - `report`: histograms per outcome, text and JSON;
//! - `verdict`: the database checks (seckill events, carts, stock);
//! - `chat`: the WebSocket chat scenario, with its own driver and report.

mod chat;
mod cli;
mod client;
mod drive;
mod outcome;
mod prepare;
mod report;
mod scenario;
mod verdict;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = actix_web::rt::System::new().block_on(async move {
        let (report, json) = match cli.command {
            Command::Chat(args) => {
                let json = args.json;
                let report = chat::run(args).await?;
                println!("{}", if json { serde_json::to_string_pretty(&report)? } else { report.to_text() });
                return anyhow::Ok(report.pass);
            }
            Command::FlashSale(args) => {
                let json = args.load.json;
                (scenario::flash_sale(args).await?, json)
            }
            Command::Healthz(args) => {
                let json = args.load.json;
                (scenario::healthz(args).await?, json)
            }
            Command::Accounts(args) => {
                let json = args.load.json;
                (scenario::accounts(args).await?, json)
            }
            Command::ProductDetail(args) => {
                let json = args.load.json;
                (scenario::product_detail(args).await?, json)
            }
            Command::Cart(args) => {
                let json = args.load.json;
                (scenario::cart(args).await?, json)
            }
        };
        println!("{}", if json { report.to_json()? } else { report.to_text() });
        anyhow::Ok(report.pass)
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}
