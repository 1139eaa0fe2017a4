// Statement parsing and matching at the issue's scale: a 100,000-line statement in each
// format, and matching those lines against 1,000,000 ledger entries of the account. One
// iteration is the whole statement; throughput reads as statements per second (× 100,000
// for lines per second). Parsing and matching only: recording the import in the log is not
// built yet.
import Benchmark
import TallyCore
import TallyReconcile

let lineCount = 100_000
let entryCount = 1_000_000
let day0: Int32 = 20_400  // 2025-11-08

func scale(_ code: String) -> Int? { code == "EUR" ? 2 : nil }

func ymd(_ days: Int32) -> (Int, Int, Int) {
  CivilTime.civil(days: Int(days))
}

func pad(_ v: Int, _ n: Int) -> String {
  let s = String(v)
  return String(repeating: "0", count: max(0, n - s.count)) + s
}

/// Line i: a credit or debit of a few hundred euros, 30 days of dates, references for 9 in 10.
func amount(_ i: Int) -> Int { 100 + (i &* 7919) % 90_000 }
func day(_ i: Int) -> Int32 { day0 + Int32(i % 30) }
func credit(_ i: Int) -> Bool { i % 3 != 0 }

let csv: [UInt8] = {
  var s = "booking_date,value_date,amount,currency,bank_ref,end_to_end_id,description\n"
  for i in 0..<lineCount {
    let (y, m, d) = ymd(day(i))
    let date = "\(y)-\(pad(m, 2))-\(pad(d, 2))"
    let a = amount(i)
    let signed = (credit(i) ? "" : "-") + "\(a / 100).\(pad(a % 100, 2))"
    let e2e = i % 10 == 0 ? "" : "E2E-\(i)"
    s += "\(date),\(date),\(signed),EUR,BANK-\(i),\(e2e),payment \(i)\n"
  }
  return Array(s.utf8)
}()

let camt: [UInt8] = {
  var s =
    #"<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><GrpHdr><MsgId>M1</MsgId><CreDtTm>2025-12-08T00:00:00</CreDtTm></GrpHdr><Stmt><Id>S1</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>"#
  for i in 0..<lineCount {
    let (y, m, d) = ymd(day(i))
    let date = "\(y)-\(pad(m, 2))-\(pad(d, 2))"
    let a = amount(i)
    let e2e = i % 10 == 0 ? "NOTPROVIDED" : "E2E-\(i)"
    s +=
      "<Ntry><Amt Ccy=\"EUR\">\(a / 100).\(pad(a % 100, 2))</Amt><CdtDbtInd>"
      + (credit(i) ? "CRDT" : "DBIT") + "</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>"
      + "<BookgDt><Dt>\(date)</Dt></BookgDt><ValDt><Dt>\(date)</Dt></ValDt>"
      + "<AcctSvcrRef>BANK-\(i)</AcctSvcrRef><BkTxCd/><NtryDtls><TxDtls><Refs>"
      + "<EndToEndId>\(e2e)</EndToEndId></Refs><RmtInf><Ustrd>payment \(i)</Ustrd></RmtInf>"
      + "</TxDtls></NtryDtls></Ntry>"
  }
  s += "</Stmt></BkToCstmrStmt></Document>"
  return Array(s.utf8)
}()

let mt940: [UInt8] = {
  var s = ":20:STMT1\n:25:DE89370400440532013000\n:28C:1/1\n:60F:C251108EUR0,00\n"
  var balance = 0
  for i in 0..<lineCount {
    let (y, m, d) = ymd(day(i))
    let date = pad(y % 100, 2) + pad(m, 2) + pad(d, 2)
    let a = amount(i)
    balance += credit(i) ? a : -a
    s += ":61:\(date)\(credit(i) ? "C" : "D")\(a / 100),\(pad(a % 100, 2))NTRFNONREF//BANK-\(i)\n"
    s += i % 10 == 0 ? ":86:payment \(i)\n" : ":86:EREF+E2E-\(i) payment \(i)\n"
  }
  let (y, m, d) = ymd(day(lineCount - 1))
  let mark = balance >= 0 ? "C" : "D"
  let b = abs(balance)
  s += ":62F:\(mark)\(pad(y % 100, 2))\(pad(m, 2))\(pad(d, 2))EUR\(b / 100),\(pad(b % 100, 2))\n-"
  return Array(s.utf8)
}()

/// 1M entries on the account: the first 100k are the statement's lines (90 % carry the
/// end-to-end id as their ref, the rest only match by amount and date), the others are other
/// days' traffic of other amounts.
let candidates: [LedgerCandidate] = (0..<entryCount).map { i in
  if i < lineCount {
    return LedgerCandidate(
      entryId: "e-\(i)", seq: UInt64(i + 1), ref: i % 10 == 0 ? nil : "E2E-\(i)",
      amountMinor: Int128(amount(i)), currency: "EUR",
      direction: credit(i) ? .credit : .debit, dateDays: day(i))
  }
  return LedgerCandidate(
    entryId: "e-\(i)", seq: UInt64(i + 1), ref: "other-\(i)",
    amountMinor: Int128(1_000_000 + i), currency: "EUR", direction: .credit,
    dateDays: day0 - 60 + Int32(i % 30))
}

let benchmarks: @Sendable () -> Void = {
  Benchmark.defaultConfiguration = .init(
    metrics: [.wallClock, .throughput, .peakMemoryResident], maxDuration: .seconds(10),
    maxIterations: 5)

  for (name, bytes, format) in [
    ("csv", csv, StatementFormat.csv), ("camt053", camt, .camt053), ("mt940", mt940, .mt940),
  ] {
    Benchmark("parse \(name) 100k lines") { benchmark in
      for _ in benchmark.scaledIterations {
        blackHole(try StatementParser.parse(bytes, format: format, scale: scale))
      }
    }
  }

  let lines = try! StatementParser.parse(csv, format: .csv, scale: scale).lines
  Benchmark("match 100k lines against 1M entries") { benchmark in
    for _ in benchmark.scaledIterations {
      let out = Matcher.match(lines: lines, candidates: candidates)
      // 90 % match by reference; of the rest, those whose amount and date are unique.
      precondition(out.count >= lineCount * 9 / 10, "matched \(out.count) of \(lineCount)")
      blackHole(out)
    }
  }
}
