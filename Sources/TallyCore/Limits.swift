/// Every limit of the ledger, in one place, with the reason for its value.
///
/// Tests exercise each at `max` and `max + 1`. Changing one is a format or protocol change:
/// write it down in docs/FORMAT.md and docs/PROTOCOL.md first.
public enum Limits {
  /// Account, partner and hold names, entry ids: ASCII `[A-Za-z0-9._:-]`.
  /// 128 bytes fits any UUID, IBAN or composite key with room to spare, and keeps the
  /// largest LMDB key (`accounts` by name) far below LMDB's 511-byte key limit.
  public static let accountNameBytesMax = 128
  /// Entry, hold and partner ids: 64 bytes holds a UUID (36), a ULID (26) or a
  /// prefixed idempotency key.
  public static let entryIdBytesMax = 64
  public static let partnerIdBytesMax = 64
  /// Human names of partners and assets.
  public static let displayNameBytesMax = 256
  /// External reference (`ref`): a bank reference, end-to-end id or invoice number.
  /// ISO 20022 references are at most 35 characters; 128 bytes leaves room for prefixes.
  public static let refBytesMax = 128
  /// Legs per entry: 2 is the double-entry minimum; 128 covers a payroll or a fee split
  /// while bounding the work of one command (and its event, under 32 KiB).
  public static let legsPerEntryMin = 2
  public static let legsPerEntryMax = 128
  /// Metadata: at most 32 pairs, keys 1…64 bytes, values 0…512 bytes, so the metadata
  /// of one record stays under 19 KiB.
  public static let metadataPairsMax = 32
  public static let metadataKeyBytesMax = 64
  public static let metadataValueBytesMax = 512
  /// Custom asset codes: `[A-Z0-9_]`, 1…16 bytes (ISO codes are 3 letters).
  public static let assetCodeBytesMax = 16
  /// Scales 0…18: 10^18 still leaves 10^20 major units in an Int128 balance.
  public static let assetScaleMax: UInt8 = 18
  /// Commands in one batch (one write transaction). Bounds the memory of a batch and the
  /// time a commit holds the writer.
  public static let commandsPerBatchMax = 100_000
  /// Holds expired by one `expire` command; callers repeat until none are due.
  public static let holdsPerExpireMax = 10_000
  /// Page size of `log` and `statement` reads.
  public static let pageLimitMax = 10_000
  public static let pageLimitDefault = 100

  /// Statement lines in one `recon_imported` event: a 100k-line statement becomes 100
  /// events of at most a few hundred KiB each, instead of one of tens of MiB.
  public static let reconLinesPerEventMax = 1000
  /// Statement lines in one write group of an import applied in groups (one slice, one
  /// `recon_imported` event, and the matches it completes): about 14 µs of writer time a
  /// line with its match (BENCHMARKS.md §7c), so 250 lines hold the writer about 3.5 ms, and
  /// other clients' groups wait at most that long behind an import.
  public static let reconLinesPerGroupMax = 250
  /// Lines in one import (the statement parser's own limit).
  public static let reconLinesPerImportMax = 1_000_000
  /// Statements in one import (a file of several days, accounts or currencies): a year of
  /// daily statements for a dozen accounts (4,380) fits; the parser's `statementsMax`.
  public static let reconStatementsPerImportMax = 5_000
  /// Matches in one `recon_matched` event (the same bound as its lines).
  public static let reconMatchesPerEventMax = 1000
  /// Text fields of a statement line: references (ISO 20022 allows 35 characters; 256
  /// bytes leaves room for any bank's), the identity (8 fields), remittance (ISO 20022
  /// unstructured remittance is up to 140 characters, repeated; 4 KiB holds any).
  public static let reconReferenceBytesMax = 256
  public static let reconIdentityBytesMax = 2048
  public static let reconRemittanceBytesMax = 4096
  /// A resolution's reason and who resolved it.
  public static let reconReasonBytesMax = 512
  public static let reconByBytesMax = 128
  /// Entries or lines in one rule-3 match (the matcher's `partsMax` is lower).
  public static let reconMatchPartsMax = 64
  /// Days a value date may differ for the amount-and-date and sum rules: the default, and
  /// the most an import may ask for (a wider window only makes more candidates ambiguous).
  public static let reconToleranceDaysDefault: Int32 = 2
  public static let reconToleranceDaysMax: Int32 = 31
}
