import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A TCP server on 127.0.0.1 that reads whatever arrives and never answers, so a request sent
/// to it stays pending until the client gives up: a test can cancel a request that has surely
/// reached a server and not been answered. It counts the bytes it read and the connections
/// still open (a client that aborts closes its connection).
final class SilentServer: Sendable {
    let port: Int
    private let listener: Int32
    private let state = Mutex(State())

    private struct State {
        var bytesRead = 0
        var connections: Set<Int32> = []
        var stopped = false
    }

    init() throws {
        #if canImport(Darwin)
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #else
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #endif
        guard fd >= 0 else { throw FakeServerError(message: "socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw FakeServerError(message: "bind/listen: errno \(errno)")
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Bytes read from all connections so far.
    var bytesRead: Int { state.withLock { $0.bytesRead } }
    /// Connections accepted and not yet closed by their client.
    var openConnections: Int { state.withLock { $0.connections.count } }

    /// Stops accepting and closes the connections still open.
    func stop() {
        // Under the lock, so that no descriptor is closed (and its number reused) in between.
        state.withLock { s in
            s.stopped = true
            for fd in s.connections { _ = shutdown(fd, Int32(SHUT_RDWR)) }
        }
        _ = shutdown(listener, Int32(SHUT_RDWR))
    }

    deinit {
        stop()
        close(listener)
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                return
            }
            let admitted = state.withLock { s -> Bool in
                guard !s.stopped else { return false }
                s.connections.insert(fd)
                return true
            }
            guard admitted else {
                close(fd)
                return
            }
            Thread.detachNewThread { [self] in readLoop(fd) }
        }
    }

    private func readLoop(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                state.withLock { $0.bytesRead += count }
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        state.withLock { s in
            s.connections.remove(fd)
            close(fd)
        }
    }
}
