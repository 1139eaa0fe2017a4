import ArgumentParser

/// `tally promote --server H:P`: turns a caught-up read replica into the primary
/// (docs/REPLICATION.md, "Fail-over").
struct Promote: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "promote",
    abstract: "Turn a caught-up read replica (tallyd --replica-of) into the primary.",
    discussion: """
      Sends REPLICA.PROMOTE to the replica at --server (admin key). The replica stops \
      following, checks that it holds every event of the stream, then takes writes and \
      publishes to the same stream; from its first publish on, the old primary can append \
      nothing more there. Promote only a replica of a primary that is down or cut off: \
      see docs/REPLICATION.md for the procedure.
      """)
  @OptionGroup var global: GlobalOptions

  func run() throws {
    guard let online = try global.online() else {
      throw usage("promote talks to a running replica: give --server (or $TALLY_SERVER)")
    }
    defer { online.close() }
    try online.show("REPLICA.PROMOTE")
  }
}
