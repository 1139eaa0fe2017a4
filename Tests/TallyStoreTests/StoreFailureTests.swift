import CLMDB
import Glibc
import TallyCore
import TallyTestSupport
import Testing

@testable import TallyStore

/// Operating errors (disk full, file too large) must surface as `StoreError`s that abort the
/// batch and leave the ledger usable; never a crash.
@Suite("Store failures")
struct StoreFailureTests {
  /// Regression: `mdb_txn_commit` frees the transaction even when it fails, and the engine
  /// once aborted it again (a crash). A failing write is provoked here with RLIMIT_FSIZE at
  /// the journal segment's size (EFBIG when the group needs the next segment); the LMDB
  /// transaction, not yet committed, is aborted.
  @Test(
    "A commit that fails (file size limit) throws a StoreError and the ledger stays usable",
    .bug(id: "commit-failure-double-abort", "aborting a transaction mdb_txn_commit freed"))
  func failedCommitIsAnError() async throws {
    let dir = try TempDir()
    defer { dir.remove() }
    let path = dir.ledgerPath
    await #expect(processExitsWith: .success) { [path = path as String] in
      var code: Int32 = 9
      do {
        signal(SIGXFSZ, SIG_IGN)
        let ledger = try Ledger.create(at: path, now: t0)
        try applyAll(ledger, [open("a"), open("b", normal: .credit)])
        var st = stat()
        _ = stat(path + "/journal/" + JournalFormat.segmentName(1), &st)
        var limit = rlimit(rlim_cur: rlim_t(st.st_size), rlim_max: rlim_t.max)
        setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit)
        let md = meta(("pad", String(repeating: "p", count: 400)))
        let batch = (0..<2000).map {
          post("e\($0)", [debit("a", 1), credit("b", 1)], metadata: md)
        }
        do {
          _ = try ledger.apply(batch, now: t0)
          code = 3  // the limit did not bite: the test proves nothing
        } catch {
          limit.rlim_cur = rlim_t.max
          setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit)
          // Nothing of the failed batch is visible, and the same batch now succeeds.
          let before = ledger.head.seq
          let out = try ledger.apply(batch, now: t0)
          let applied = out.allSatisfy { if case .applied = $0 { true } else { false } }
          let ok = try ledger.verify().ok
          code = before == 3 && applied && ok ? 0 : 4
        }
      } catch {
        code = 5
      }
      exit(code)
    }
  }
}
