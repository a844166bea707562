namespace Flowline.Kernels;

/// <summary>A kernel failed to compute a frame; the worker records it as the worker's failure.</summary>
public sealed class KernelFailureException : Exception
{
    /// <summary>Creates the exception.</summary>
    public KernelFailureException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public KernelFailureException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
