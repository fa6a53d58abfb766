//! The `floorwatch` binary: parses the command line and hands each command to the module
//! that does it; maps a config error and an exceeded shutdown grace to their exit codes.
//! Owns nothing else.

use clap::Parser;

use floorwatch::cli::{Cli, Command, EXIT_CONFIG, EXIT_GRACE};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(a) => floorwatch::replay::main(a),
        Command::CheckConfig(a) => floorwatch::config::check_config_main(&a.file),
        Command::Run(a) => floorwatch::daemon::run_main(a),
        Command::Relay(a) => floorwatch::relay::main(a),
        Command::StreamExport(a) => floorwatch::jetstream::export_main(a),
        Command::Demo(a) => floorwatch::demo::main(a),
        Command::Simulate(a) => floorwatch::simulate::main(a),
        Command::Report(a) => floorwatch::report::report_main(a),
        Command::Export(a) => floorwatch::report::export_main(a),
        Command::Import(a) => floorwatch::import::main(a),
        Command::CloseMonth(a) => floorwatch::api_client::close_month_main(a),
        Command::Schedule(a) => match a.what {
            floorwatch::cli::ScheduleCommand::Import(a) => floorwatch::schedule::import_main(a),
        },
        Command::CheckStore(a) => floorwatch::store::check::main(&a.dir),
        Command::Man(a) => floorwatch::man::write_pages(&a.dir),
    };
    if let Err(e) = result {
        eprintln!("floorwatch: {e:#}");
        let code = if e
            .downcast_ref::<floorwatch::config::ConfigError>()
            .is_some()
        {
            EXIT_CONFIG
        } else if e
            .downcast_ref::<floorwatch::daemon::GraceExceeded>()
            .is_some()
        {
            EXIT_GRACE
        } else {
            1
        };
        std::process::exit(code);
    }
}
