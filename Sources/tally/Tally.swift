import ArgumentParser
import Glibc

/// `tally`: the admin tool over a data directory.
@main
struct Tally: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tally",
    abstract: "Tally: an append-only, hash-chained double-entry ledger.",
    discussion: """
      Exit codes: 0 ok, 1 rejected or verification failed, 2 usage or I/O error.
      Global options (--data DIR, --json, --no-progress, --server HOST:PORT, --key, \
      --secret) may come before or after the command. Long commands show progress on \
      stderr when it is a terminal. With --server (or $TALLY_SERVER) commands run through \
      tallyd and print its JSON answers.
      """,
    version: "0.1.0",
    subcommands: [
      Init.self, PartnerCommand.self, AssetCommand.self, AccountCommand.self, Post.self,
      HoldCommand.self, Reverse.self, Balance.self, Statement.self, Log.self, Verify.self,
      Rebuild.self, StatsCommand.self, KeyCommand.self, ProofCommand.self,
      CheckpointCommand.self, VKey.self, SigningKeyCommand.self, Export.self, ReconCommand.self,
      Call.self, Promote.self, BackupCommand.self, RestoreCommand.self,
    ])

  /// Moves leading global options behind the subcommand path, so that both
  /// `tally --data D balance A` and `tally balance A --data D` work.
  static func reorder(_ args: [String]) -> [String] {
    var globals = [String]()
    var rest = args[...]
    while let first = rest.first {
      if first == "--json" || first == "--no-progress" {
        globals.append(first)
        rest = rest.dropFirst()
      } else if ["--data", "--server", "--key", "--secret"].contains(first), rest.count >= 2 {
        globals.append(contentsOf: rest.prefix(2))
        rest = rest.dropFirst(2)
      } else if ["--data=", "--server=", "--key=", "--secret="].contains(where: first.hasPrefix) {
        globals.append(first)
        rest = rest.dropFirst()
      } else {
        break
      }
    }
    // Behind a known subcommand only: before an unknown word the parser would blame the
    // global option instead of naming the word, so leave the globals out.
    guard let command = rest.first else { return args }  // no command: a usage error
    guard configuration.subcommands.contains(where: { $0._commandName == command }) else {
      return Array(rest)
    }
    return Array(rest) + globals
  }

  static func main() {
    let args = reorder(Array(CommandLine.arguments.dropFirst()))
    jsonOutput = args.contains("--json")
    do {
      var command = try parseAsRoot(args)
      try command.run()
    } catch let e as CLIExit {
      Glibc.exit(e.code)
    } catch {
      let code = exitCode(for: error)
      if code == .success {
        print(fullMessage(for: error))
        Glibc.exit(0)
      }
      if let e = error as? ExitCode { Glibc.exit(e.rawValue) }
      FileHandleOut.stderr(fullMessage(for: error))
      printJSONError(code: "USAGE", message: message(for: error))
      // Usage errors exit 2 (ArgumentParser's default is 64).
      Glibc.exit(2)
    }
  }
}
