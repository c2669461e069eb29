/// The fuzz targets by name, for the libFuzzer driver (`make fuzz`) and for replaying the corpus
/// and the regression cases in the tests.
public enum FuzzTargets {
    public static let all: [String: @Sendable ([UInt8]) -> FuzzVerdict] = [
        "json": JSONTarget.run,
        "sse": SSETarget.run,
        "manifest": ManifestTarget.run,
        "http": HTTPTarget.run,
    ]
}
