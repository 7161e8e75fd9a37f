namespace PowerRetention.Kernels.Tests.Support;

/// <summary>Shortcuts for synthetic inputs and their reference outputs.</summary>
internal static class Inputs
{
    public static RetentionInputs Make(int time, int heads = 2, int dim = 16, int? queryHeads = null, int? valueDim = null, bool gating = true, int seed = 7, int batch = 1, DataType dataType = DataType.Float32) =>
        SyntheticInputs.Create(batch, time, heads, dim, queryHeads, valueDim, gating, seed, dataType);

    public static double[] Reference(RetentionInputs inputs, int degree, RetentionState? initialState = null) =>
        ReferenceRetention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, degree, initialState: initialState);

    /// <summary>Returns tokens [start, end) of a (b, t, ...) tensor as a new float32 tensor.</summary>
    public static Tensor SliceTime(Tensor tensor, int start, int end)
    {
        int[] shape = tensor.Shape.ToArray();
        long inner = tensor.ElementCount / Math.Max(1L, (long)shape[0] * shape[1]);
        int time = shape[1];
        shape[1] = end - start;
        var result = Tensor.Zeros(tensor.DataType, shape);
        var buffer = new float[(end - start) * inner];
        for (int b = 0; b < shape[0]; b++)
        {
            tensor.Storage.Read(((long)b * time + start) * inner, buffer);
            result.Storage.Write((long)b * (end - start) * inner, buffer);
        }

        return result;
    }

    public static RetentionInputs SliceTime(RetentionInputs inputs, int start, int end) => new(
        SliceTime(inputs.Q, start, end),
        SliceTime(inputs.K, start, end),
        SliceTime(inputs.V, start, end),
        inputs.LogG is null ? null : SliceTime(inputs.LogG, start, end));
}
