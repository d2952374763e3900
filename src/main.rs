//! `cm`: the command-line tool. Parses arguments and dispatches to [`cm::cli`], where each
//! command's body lives.

use clap::{Parser, Subcommand};
use cm::cli;

#[derive(Parser)]
#[command(name = "cm", version, about = "Train, sample and evaluate consistency models")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a method briefly on a built-in data set and show what it makes (the main job).
    Demo(cli::DemoArgs),
    /// Train from a TOML config.
    Train(cli::TrainArgs),
    /// Draw samples from a checkpoint or run folder.
    Sample(cli::SampleArgs),
    /// Metrics of a sample file (or a run) against its data.
    Eval(cli::EvalArgs),
    /// Write a run's EMA weights as a small model file (what `models/` ships).
    Export(cli::ExportArgs),
    /// Print schedules, configs, checkpoint contents.
    Inspect(cli::InspectArgs),
    /// Data sets and weights: `cm data fetch mnist|fashion-mnist|lpips [--dir data]`.
    Data {
        #[command(subcommand)]
        cmd: cli::DataCmd,
    },
    /// The small image classifiers behind FD-mnistnet / FD-fashionnet.
    Classifier {
        #[command(subcommand)]
        cmd: cli::ClassifierCmd,
    },
    /// Training steps/s and sampling latency of the standard 2-D config.
    Bench(cli::BenchArgs),
    /// The papers' claims as experiments over seeds, with intervals and verdicts.
    Repro(cli::ReproArgs),
}

fn main() {
    cm::train::tune_allocator();
    let result = match Cli::parse().cmd {
        Cmd::Demo(a) => cli::demo(a),
        Cmd::Train(a) => cli::train(a),
        Cmd::Sample(a) => cli::sample(a),
        Cmd::Eval(a) => cli::eval(a),
        Cmd::Export(a) => cli::export(a),
        Cmd::Inspect(a) => cli::inspect_cmd(a),
        Cmd::Data { cmd } => cli::data(cmd),
        Cmd::Classifier { cmd } => cli::classifier(cmd),
        Cmd::Bench(a) => cli::bench(a),
        Cmd::Repro(a) => cli::repro(a),
    };
    if let Err(e) = result {
        // A graceful stop (SIGINT / SIGTERM) is not an error: its checkpoint is written.
        if let Some(i) = e.downcast_ref::<cm::train::stop::Interrupted>() {
            eprintln!("{i}");
            std::process::exit(cm::train::stop::EXIT_INTERRUPTED);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
