using System.Net;
using System.Net.Sockets;

namespace Flowline.Cli.Tests;

/// <summary><c>flowline bridge</c>: its command line and its start errors (the bridges themselves are tested in Flowline.Nats.Tests).</summary>
public sealed class BridgeCommandTests
{
    [Fact]
    public void Subscribe_DtypeWithoutShape_SaysTheyGoTogether_AndExitsOne()
    {
        var result = Cli.Run("bridge", "subscribe", "--namespace", "flcli-bridge", "--stream", "s", "--subject", "x", "--dtype", "float32");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("--dtype and --shape go together", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Subscribe_BadShape_NamesThePart_AndExitsOne()
    {
        var result = Cli.Run("bridge", "subscribe", "--namespace", "flcli-bridge", "--stream", "s", "--subject", "x", "--dtype", "float32", "--shape", "12x0");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("'0' is not a positive size", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Publish_NoServerListening_CannotConnect_AndExitsTwo()
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        var result = Cli.Run("bridge", "publish", "--namespace", "flcli-bridge", "--stream", "s", "--subject", "x", "--nats", $"nats://127.0.0.1:{port}");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"cannot connect to NATS at nats://127.0.0.1:{port}", result.Error, StringComparison.Ordinal);
    }
}
