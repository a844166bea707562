namespace Flowline.Client;

/// <summary>
/// A control-plane call that failed: the server answered with an error status, or could not be reached
/// (<see cref="StatusCode"/> 0). The message names the call, e.g.
/// <c>POST /commands/start: 409 cannot start: the pipeline is running</c>.
/// </summary>
public sealed class RemoteManagerException : Exception
{
    /// <summary>Makes an exception for a failed call.</summary>
    /// <param name="statusCode">The HTTP status code, or 0 when no response was received.</param>
    /// <param name="detail">What the server said (its <c>detail</c>), or what went wrong on the way.</param>
    /// <param name="message">The whole message, naming the call.</param>
    /// <param name="innerException">The transport failure, if any.</param>
    public RemoteManagerException(int statusCode, string detail, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        StatusCode = statusCode;
        Detail = detail;
    }

    /// <summary>The typed error code the server gave (<c>code</c>: a routed request's <c>timeout</c>, <c>process_exited</c>, ...), or null.</summary>
    public string? Code { get; init; }

    /// <summary>The field the server named (<c>field</c>: a refused setting), or null.</summary>
    public string? Field { get; init; }

    /// <summary>The HTTP status code of the response; 0 when no response was received (connection refused, timed out).</summary>
    public int StatusCode { get; }

    /// <summary>
    /// The server's explanation: the <c>detail</c> field of a JSON error body when it is a string, else the
    /// body's text, else the reason phrase; for transport failures, the failure's description.
    /// </summary>
    public string Detail { get; }
}
