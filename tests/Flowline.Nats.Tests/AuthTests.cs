using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Flowline.Nats.Tests.Infrastructure;
using Flowline.SharedMemory;

namespace Flowline.Nats.Tests;

/// <summary>Authentication and TLS against a real nats-server configured for them: accepted with the right settings, refused clearly without.</summary>
public sealed class AuthTests : BridgeTest
{
    private static readonly FrameFormat Format = new(ElementType.Int32, 32);

    /// <summary>Sends frames until one arrives through the bridge pair, then checks its bytes.</summary>
    private async Task AssertFramesPass(NatsBridgeOptions options)
    {
        var source = Own(SharedStream.Open(HostA, "s", Format));
        var writer = Own(source.OpenWriter<int>());
        OwnAsync(await NatsSubscriber.StartAsync(HostB, "s", options, new NatsSubscriberOptions { Format = Format }));
        var remote = Own(SharedStream.Attach(HostB, "s"));
        var reader = Own(remote.OpenReader<int>(new ReaderOptions { Delivery = Delivery.Latest }));
        OwnAsync(await NatsPublisher.StartAsync(HostA, "s", options));
        var frame = Enumerable.Range(0, 32).Select(i => i * 3).ToArray();
        var received = new int[32];
        var deadline = DateTime.UtcNow + Bound;
        while (reader.ReadInto(received, out _, TimeSpan.FromMilliseconds(50)) != ReadStatus.Ok)
        {
            Assert.True(DateTime.UtcNow < deadline, "no frame came through the bridge");
            writer.Write(frame, Bound);
        }

        Assert.Equal(frame, received);
    }

    [Fact]
    public async Task UserAndPassword_RightOnesPass_WrongOnesAreRefusedWithTheReason()
    {
        using var server = Own(NatsServer.Start(null, false, "--user", "rig1", "--pass", "pa55word"));
        var subject = NewSubject();
        var refused = await Assert.ThrowsAsync<NatsBridgeException>(() =>
            NatsSubscriber.StartAsync(HostB, "s", new NatsBridgeOptions { Url = server.Url, Subject = subject, User = "rig1", Password = "wrong" }, new NatsSubscriberOptions { Format = Format }));
        Assert.Contains("Authorization", refused.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains(server.Url, refused.Message, StringComparison.Ordinal);

        await AssertFramesPass(new NatsBridgeOptions { Url = server.Url, Subject = subject, User = "rig1", Password = "pa55word" });
    }

    [Fact]
    public async Task NKey_SeedFileOfAKnownKeyPasses_AnotherKeyIsRefused()
    {
        var directory = Directory.CreateTempSubdirectory("flowline-nkey-");
        try
        {
            using var known = NATS.NKeys.KeyPair.CreatePair(NATS.NKeys.PrefixByte.User);
            using var stranger = NATS.NKeys.KeyPair.CreatePair(NATS.NKeys.PrefixByte.User);
            var config = Path.Combine(directory.FullName, "server.conf");
            File.WriteAllText(config, $"authorization {{ users = [ {{ nkey: \"{known.GetPublicKey()}\" }} ] }}\n");
            var knownSeed = Path.Combine(directory.FullName, "known.nk");
            var strangerSeed = Path.Combine(directory.FullName, "stranger.nk");
            File.WriteAllText(knownSeed, $"{known.GetSeed()}\n{known.GetPublicKey()}\n");
            File.WriteAllText(strangerSeed, $"{stranger.GetSeed()}\n{stranger.GetPublicKey()}\n");
            using var server = Own(NatsServer.Start(null, false, "-c", config));

            var refused = await Assert.ThrowsAsync<NatsBridgeException>(() =>
                NatsSubscriber.StartAsync(HostB, "s", new NatsBridgeOptions { Url = server.Url, Subject = NewSubject(), NKeyFile = strangerSeed }, new NatsSubscriberOptions { Format = Format }));
            Assert.True(refused.Message.Contains("Authorization", StringComparison.OrdinalIgnoreCase), refused.Message);

            await AssertFramesPass(new NatsBridgeOptions { Url = server.Url, Subject = NewSubject(), NKeyFile = knownSeed });
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Tls_ServerCertificateFromTheGivenCa_PassesAndUnknownCaIsRefused()
    {
        var directory = Directory.CreateTempSubdirectory("flowline-tls-");
        try
        {
            var (caFile, certFile, keyFile) = MakeCertificates(directory.FullName);
            using var server = Own(NatsServer.Start(null, false, "--tls", "--tlscert", certFile, "--tlskey", keyFile));
            var url = $"tls://127.0.0.1:{server.Port}";

            // Without the CA the server's certificate is not trusted: refused at start, saying why.
            var refused = await Assert.ThrowsAsync<NatsBridgeException>(() =>
                NatsPublisher.StartAsync(HostA, "s", new NatsBridgeOptions { Url = url, Subject = NewSubject() }));
            Assert.Contains("cannot connect to NATS", refused.Message, StringComparison.Ordinal);

            await AssertFramesPass(new NatsBridgeOptions { Url = url, Subject = NewSubject(), TlsCaFile = caFile, RequireTls = true });
        }
        finally
        {
            // The bridges are disposed at teardown; the files are read at connection only.
            directory.Delete(recursive: true);
        }
    }

    /// <summary>A throwaway CA and a server certificate for 127.0.0.1 signed by it, as PEM files.</summary>
    private static (string Ca, string Cert, string Key) MakeCertificates(string directory)
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=flowline test CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));

        using var serverKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", serverKey, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var cert = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(50), RandomNumberGenerator.GetBytes(8));

        var caFile = Path.Combine(directory, "ca.pem");
        var certFile = Path.Combine(directory, "server.pem");
        var keyFile = Path.Combine(directory, "server-key.pem");
        File.WriteAllText(caFile, ca.ExportCertificatePem());
        File.WriteAllText(certFile, cert.ExportCertificatePem());
        File.WriteAllText(keyFile, serverKey.ExportPkcs8PrivateKeyPem());
        return (caFile, certFile, keyFile);
    }
}
