// The server's per-request CPU outside the engine: parsing a request line into a typed
// request (strict JSON, entry decoding) and formatting the answer. One iteration is one
// line; for the batch, `scalingFactor .kilo` makes the throughput read as thousands of
// entries per second.
import Benchmark
import TallyCore
import TallyProtocol

func entryJSON(_ i: Int) -> String {
  #"{"id":"bench-\#(i)","legs":[{"account":"load-\#(i % 10_000)","side":"debit","amount":"1050"},"#
    + #"{"account":"load-\#((i * 7 + 1) % 10_000)","side":"credit","amount":"1050"}],"#
    + #""currency":"USD"}"#
}

let postLine = Array(("ENTRY.POST " + entryJSON(42)).utf8)
let batchLine = Array(
  ("ENTRY.BATCH {\"entries\":[" + (0..<1000).map(entryJSON).joined(separator: ",") + "]}").utf8)

let benchmarks: @Sendable () -> Void = {
  Benchmark.defaultConfiguration = .init(
    metrics: [.wallClock, .throughput, .mallocCountTotal], maxDuration: .seconds(3))

  Benchmark("parse ENTRY.POST") { benchmark in
    for _ in benchmark.scaledIterations {
      blackHole(RequestParser.parse(postLine, batchEntriesMax: 10_000))
    }
  }

  Benchmark(
    "parse ENTRY.BATCH 1000",
    configuration: .init(scalingFactor: .kilo)
  ) { benchmark in
    // scaledIterations holds 1000 per iteration: one 1000-entry line each.
    for _ in 0..<max(1, benchmark.scaledIterations.count / 1000) {
      blackHole(RequestParser.parse(batchLine, batchEntriesMax: 10_000))
    }
  }

  Benchmark("format ENTRY.POST answer") { benchmark in
    for i in benchmark.scaledIterations {
      blackHole(
        WireOK.line(
          JSONObject([
            ("id", .string("bench-\(i)")), ("seq", .number(String(i))),
            ("ts", .number("1795617067262620142")),
            ("chain", .string("50a82e1dd009171ad3e3ebd5f6178e38a15f969a039aae1e961018b70e2deaec")),
          ])))
    }
  }

  Benchmark("format rejection") { benchmark in
    for _ in benchmark.scaledIterations {
      blackHole(
        WireError(
          Rejection(.insufficientFunds, "account a would go below zero", ["account": "a"])
        ).line)
    }
  }
}
