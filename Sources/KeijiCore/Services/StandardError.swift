#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A daemon's lines to its standard error (its log file), written with `write(2)`: `FileHandle.write` ends the process
/// (a fatal error) when the write fails, so a full log disk took the scheduler down at its next such line, one a task
/// could cause (`kill -USR1 $PPID` is said there). A line that cannot be written is dropped.
public enum StandardError {
    public static func write(_ text: String) {
        var text = text
        text.withUTF8 { _ = FileSystem.writeAll(UnsafeRawBufferPointer($0), to: STDERR_FILENO) }
    }
}
