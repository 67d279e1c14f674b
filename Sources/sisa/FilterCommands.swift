import ArgumentParser
import Foundation
import SisaCoordinator

struct Filter: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The opt-in output filter: block query output that reproduces deleted records verbatim.",
        discussion: """
        A guardrail, not unlearning: it hides text, the models are unchanged. Exact deletion already \
        retrains the models without the record, so on a SISA store the filter only matters for text the \
        models could still produce from other records; `sisa compare --method filter` measures it as an \
        approximate method. What it keeps: a random 16-byte salt and, for each record deleted while it is \
        enabled, the first 8 bytes of SHA-256(salt || window) of each of its N-byte windows, in \
        catalog.sqlite. No record byte is kept, but anyone with the catalog and a guess of a deleted text can \
        check the guess. `sisa filter disable` erases salt and fingerprints.
        """,
        subcommands: [FilterEnable.self, FilterDisable.self, FilterStatusCommand.self])
}

struct FilterEnable: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enable",
        abstract: "Fingerprint every record deleted from now on; queries then block its N-byte windows.")
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Window length N in bytes.") var bytes: Int = OutputFilter.defaultWindowBytes

    func run() throws {
        let store = try storeOptions.open(writer: "filter enable")
        try store.enableFilter(windowBytes: bytes)
        print("output filter enabled: \(bytes)-byte windows of records deleted from now on are blocked in `sisa query`")
    }
}

struct FilterDisable: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "disable",
        abstract: "Turn the filter off and erase its salt and fingerprints.")
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        let store = try storeOptions.open(writer: "filter disable")
        try store.disableFilter()
        print("output filter disabled; its fingerprints and salt are erased")
    }
}

struct FilterStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Whether the filter is on, and what it holds.")
    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let s = try storeOptions.open().filterStatus()
        if json { try printJSON(s); return }
        if s.enabled {
            print("output filter: enabled, \(s.windowBytes!)-byte windows, \(s.fingerprints) fingerprints of \(s.records) deleted records")
        } else {
            print("output filter: disabled")
        }
    }
}
