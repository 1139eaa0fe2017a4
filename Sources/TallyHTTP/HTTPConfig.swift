/// The HTTP listener's settings (`tallyd --http HOST:PORT`). Every limit is named here with
/// the reason for its value; tests use smaller ones.
public struct HTTPConfig: Sendable {
  public var host = "127.0.0.1"
  public var port = 0
  /// Largest request body other than a statement upload: sign-in and the resolve forms are
  /// a few hundred bytes; 64 KiB leaves room for long reasons without buffering much.
  public var bodyBytesMax = 64 << 10
  /// Largest statement upload (the multipart body): a month of a busy account's camt.053 is
  /// a few MiB; the socket's RECON.IMPORT is bounded by its 1 MiB line by default, so 8 MiB
  /// is the larger of the two paths without letting one request pin much memory.
  public var uploadBytesMax = 8 << 20
  /// Sessions held at once (server memory): ops and auditors are people, a few dozen at a
  /// time; past the maximum the least recently used session ends.
  public var sessionsMax = 1024
  /// A session ends after this long without a request.
  public var sessionIdleSeconds: Int64 = 15 * 60
  /// And this long after sign-in, whatever its use.
  public var sessionAbsoluteSeconds: Int64 = 8 * 3600
  /// Marks the session cookie `Secure`: set when the pages are served over TLS (by a TLS
  /// front on the same host); a browser then never sends the cookie in the clear.
  public var secureCookies = false
  /// Rows on one page of a list (partners, accounts, statement lines, items, log events).
  public var pageRows = 50
  /// `/readyz` fails when the data directory's filesystem has less free: journal segments
  /// are prepared 64 MiB ahead and LMDB grows its map in steps, so a floor of a few of
  /// those keeps a write from being the one that finds the disk full.
  public var readyMinFreeBytes = 256 << 20

  public init() {}
}
