// The fuzz driver. Built for fuzzing (`make fuzz`: -sanitize=fuzzer,address -DFUZZING), it hands
// over to libFuzzer's driver, which calls `LLVMFuzzerTestOneInput` with the target named by
// AIGW_FUZZ_TARGET.
// Built normally, it replays files through a target: `ai-gateway-fuzz TARGET FILE...`.
import AIGatewayFuzz
import Foundation

#if FUZZING
private let target: @Sendable ([UInt8]) -> FuzzVerdict = {
    let name = ProcessInfo.processInfo.environment["AIGW_FUZZ_TARGET"] ?? ""
    guard let t = FuzzTargets.all[name] else {
        fatalError("set AIGW_FUZZ_TARGET to one of \(FuzzTargets.all.keys.sorted())")
    }
    return t
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if case .mismatch(let why) = target(input) {
        fatalError("fuzz finding: \(why)")
    }
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM links an executable's entry point under this name (its `main` points here), so the
/// fuzz build provides it and runs libFuzzer's driver instead of libFuzzer's own `main`.
@_cdecl("ai_gateway_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var vector = argv
    return runDriver(&count, &vector) { data, size in fuzzOne(data, size) }
}
#else
@main
enum Replay {
    static func main() {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = FuzzTargets.all[name] else {
            FileHandle.standardError.write(Data("usage: ai-gateway-fuzz {\(FuzzTargets.all.keys.sorted().joined(separator: "|"))} FILE...\n".utf8))
            exit(2)
        }
        var failed = 0
        for path in arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                print("\(path): unreadable")
                failed += 1
                continue
            }
            if case .mismatch(let why) = target(Array(data)) {
                print("\(path): \(why)")
                failed += 1
            }
        }
        exit(failed == 0 ? 0 : 1)
    }
}
#endif
