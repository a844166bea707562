namespace Flowline.Kernels;

/// <summary>What every kind (kernel, source or sink) declares.</summary>
public abstract class KindDefinition
{
    /// <summary>The kind's name as documents write it, such as <c>cpu.scale</c>.</summary>
    public abstract string Kind { get; }

    /// <summary>One line on what it does.</summary>
    public abstract string Description { get; }

    /// <summary>The parameters it accepts.</summary>
    public virtual IReadOnlyList<ParameterInfo> Parameters => [];

    /// <summary>True if it accepts parameters it does not declare (they are then not reported as unknown).</summary>
    public virtual bool AcceptsUndeclaredParameters => false;

    /// <summary>How many auxiliary inputs it takes.</summary>
    public virtual Arity Auxiliary => Arity.None;
}

/// <summary>
/// A kernel kind: validates a kernel of its kind against its streams and parameters, and creates the
/// runnable <see cref="IKernel"/>. Subclass it in a plugin assembly (public, with a parameterless
/// constructor) to add a kind; the document lists the assembly under <c>plugins</c>.
/// </summary>
public abstract class KernelDefinition : KindDefinition
{
    /// <summary>How many trigger inputs it takes.</summary>
    public virtual Arity Inputs => Arity.Exactly(1);

    /// <summary>How many outputs it writes.</summary>
    public virtual Arity Outputs => Arity.Exactly(1);

    /// <summary>True if it reads the kernel's <c>operation</c> field.</summary>
    public virtual bool UsesOperation => false;

    /// <summary>
    /// Checks a kernel of this kind: shapes, element types, parameters. Arity, parameter names and the
    /// <c>operation</c> field are checked before. Report problems with <see cref="NodeContext.Error"/>.
    /// </summary>
    public virtual void Validate(KernelContext context)
    {
    }

    /// <summary>Creates the kernel for a validated spec (called once per worker).</summary>
    public abstract IKernel Create(KernelContext context);
}

/// <summary>
/// A source kind: validates a source of its kind and creates the runnable <see cref="ISource"/> that
/// writes frames into its streams. Subclass it in a plugin assembly to add a kind.
/// </summary>
public abstract class SourceDefinition : KindDefinition
{
    /// <summary>How many streams it writes.</summary>
    public virtual Arity Streams => Arity.Exactly(1);

    /// <summary>Auxiliary aliases that must be fed back from a stateful sink's outputs.</summary>
    public virtual IReadOnlyList<string> RequiredFeedbackAliases => [];

    /// <summary>Checks a source of this kind.</summary>
    public virtual void Validate(SourceContext context)
    {
    }

    /// <summary>Creates the source for a validated spec (called once per worker, in the worker).</summary>
    public abstract ISource Create(SourceContext context);
}

/// <summary>
/// A sink kind: validates a sink of its kind and creates the runnable <see cref="ISink"/> that consumes
/// one stream (a stateful sink also writes feedback outputs). Subclass it in a plugin assembly to add a kind.
/// </summary>
public abstract class SinkDefinition : KindDefinition
{
    /// <summary>How many feedback outputs it writes.</summary>
    public virtual Arity Outputs => Arity.None;

    /// <summary>Checks a sink of this kind.</summary>
    public virtual void Validate(SinkContext context)
    {
    }

    /// <summary>Creates the sink for a validated spec (called once per worker, in the worker).</summary>
    public abstract ISink Create(SinkContext context);
}
