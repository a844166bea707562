using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Flowline.ControlPlane;

/// <summary>
/// Reads the file of <c>POST /document/load</c>: a regular file only, of at most a given size. The file
/// is opened with <c>O_NONBLOCK</c> (opening a FIFO would otherwise wait for a writer, for ever) and its
/// type and size are checked on the open descriptor with <c>statx</c> (whose layout is the same on every
/// architecture), so that a path swapped after a check cannot slip a FIFO or a device in.
/// </summary>
internal static class DocumentFile
{
    private const int ORdOnly = 0x0;
    private const int ONoCtty = 0x100;
    private const int ONonBlock = 0x800;
    private const int OCloExec = 0x80000;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxType = 0x1;
    private const uint StatxSize = 0x200;
    private const int StatxModeOffset = 0x1C;
    private const int StatxSizeOffset = 0x28;
    private const int ENoEnt = 2;
    private const int ENxIo = 6;
    private const int EAcces = 13;
    private const int ENotDir = 20;

    /// <summary>
    /// The text of the regular file <paramref name="path"/> (<paramref name="shownPath"/> in messages), of
    /// at most <paramref name="maxBytes"/> bytes. Throws <see cref="FileNotFoundException"/> (404) when it
    /// does not exist, and <see cref="ControlException"/>: 400 when it is not a regular file, 403 when it
    /// cannot be read, 413 when it is larger than <paramref name="maxBytes"/>.
    /// </summary>
    public static string ReadText(string path, string shownPath, int maxBytes)
    {
        var fd = Open(Encoding.UTF8.GetBytes(path + "\0"), ORdOnly | ONoCtty | ONonBlock | OCloExec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw errno switch
            {
                ENoEnt or ENotDir => new FileNotFoundException($"no such file: '{shownPath}'", shownPath),
                ENxIo => NotRegular(shownPath, "a socket"),
                EAcces => new ControlException(403, $"cannot read '{shownPath}': permission denied"),
                _ => new ControlException(400, $"cannot open '{shownPath}': {Marshal.GetPInvokeErrorMessage(errno)}"),
            };
        }

        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        var status = new byte[256];
        if (Statx(fd, [0], AtEmptyPath, StatxType | StatxSize, status) != 0)
        {
            throw new ControlException(400, $"cannot read '{shownPath}': {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        }

        var kind = (BinaryPrimitives.ReadUInt16LittleEndian(status.AsSpan(StatxModeOffset)) & 0xF000) switch
        {
            0x8000 => null,
            0x4000 => "a directory",
            0x1000 => "a FIFO (named pipe)",
            0x2000 => "a character device",
            0x6000 => "a block device",
            0xC000 => "a socket",
            _ => "not a file",
        };
        if (kind is not null)
        {
            throw NotRegular(shownPath, kind);
        }

        var size = BinaryPrimitives.ReadInt64LittleEndian(status.AsSpan(StatxSizeOffset));
        if (size > maxBytes)
        {
            throw TooLarge(shownPath, maxBytes);
        }

        // The file may grow after the check: read at most one byte beyond the limit to know.
        var buffer = new byte[(int)Math.Min(size, maxBytes) + 1];
        var length = 0;
        int read;
        while ((read = RandomAccess.Read(handle, buffer.AsSpan(length), length)) > 0)
        {
            length += read;
            if (length == buffer.Length)
            {
                if (length > maxBytes)
                {
                    throw TooLarge(shownPath, maxBytes);
                }

                Array.Resize(ref buffer, (int)Math.Min((long)buffer.Length * 2, maxBytes + 1L));
            }
        }

        // As File.ReadAllText: UTF-8 unless a byte order mark says otherwise.
        using var reader = new StreamReader(new MemoryStream(buffer, 0, length), Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd();
    }

    private static ControlException NotRegular(string path, string kind) =>
        new(400, $"'{path}' is {kind}, not a regular file: /document/load reads regular files only");

    private static ControlException TooLarge(string path, int maxBytes) =>
        new(413, $"'{path}' is larger than the {maxBytes}-byte limit on documents (flowline serve --max-document-bytes)");

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open(byte[] path, int flags);

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(int directoryFd, byte[] path, int flags, uint mask, byte[] status);
}
