"""The ``ButterflyDictionaryLearning`` estimator (layer 4, estimators)."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from skbutterfly._dictionary_learning import (
    TRANSFORM_ALGORITHMS,
    Architecture,
    OnlineState,
    encode,
    initial_dictionary,
    learn_online,
    online_step,
)
from skbutterfly._hierarchical import plan_factorization
from skbutterfly._scaling import frobenius_errors, scale_pow2, scaling_exponent
from skbutterfly._validation import check_matrix
from skbutterfly._warnings import warn_if_poor_fit

# What usually helps a dictionary that codes the samples poorly.
POOR_FIT_HINT = (
    "try more nonzeros per code (transform_n_nonzero_coefs), a larger rank, "
    "fewer factors or more epochs (max_iter); noise that no sparse code "
    "should fit (as in denoising) also counts in this error."
)


class ButterflyDictionaryLearning(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Learn a dictionary that is a fast butterfly operator, by mini-batches.

    Finds a dictionary :math:`D` of ``n_components`` unit-norm atoms (its
    rows) and sparse codes :math:`C` of the samples with
    :math:`X \\approx C D`, where :math:`D = F_1 F_2 \\cdots F_J P` is a
    butterfly (the supports of :func:`~skbutterfly.architecture`, block rank
    ``rank``): coding a sample needs its correlations with the atoms,
    :math:`D x`, which the fitted operator computes in ``O(nnz)`` instead of
    ``O(n_components * n_features)``. The contract is that of
    :class:`~sklearn.decomposition.MiniBatchDictionaryLearning`: ``fit`` on
    samples, ``transform`` returns sparse codes, ``inverse_transform``
    synthesises, ``components_`` holds the atoms.

    The square dictionary, ``n_components == n_features`` (the default), is
    the case the algorithm is designed for, a complete dictionary as in the
    references. Other values give a rectangular butterfly (zero-padded to
    sizes the architecture can split, see :func:`butterfly_factorize`).

    Parameters
    ----------
    n_components : int, default=None
        Number of atoms; ``None`` means ``n_features``.
    n_factors : int, default=None
        Number of factors ``J`` of the dictionary (see
        :func:`butterfly_factorize`); ``None`` means
        ``ceil(log2(min(n_components, n_features)))``. ``J = 2`` holds every
        separable (Kronecker) dictionary of 2-D patches of ``2**k`` pixels a
        side, such as the 2-D DCT.
    rank : int, default=1
        Block rank of the butterfly: more values, a richer dictionary. On
        image patches, ``n_factors=2`` (any rank) or ``rank >= 2`` denoise
        as well as a dense dictionary; the classic ``rank=1`` at full depth
        is about 0.9 dB worse (see Notes).
    permutation : None, str, array-like of int or list, default=None
        Column (feature) permutation of the butterfly, as in
        :func:`butterfly_factorize`: ``None``, a name (``"bit-reversal"``,
        ``"101"``) or an index array is used throughout; a searched ordering
        (``"auto"``, ``"learn"``, ``"default-8"``, a list of candidates) is
        chosen once, see ``row_permutation``.
    row_permutation : None, str, array-like of int or list, default=None
        Row permutation of the butterfly, that is the order of the atoms in
        its factors (``components_`` keeps the order of the codes): what
        :func:`butterfly_factorize` accepts. A fixed one is used throughout.
        A searched one (``"learn"``, recommended, or ``"auto"``, a list) is
        chosen once on a dictionary learned without the constraint: the
        first ``max_iter // 2`` epochs update a dense dictionary (as
        :class:`~sklearn.decomposition.MiniBatchDictionaryLearning` does,
        at its cost), its atoms are then ordered to fit a butterfly and the
        other epochs are constrained with that ordering. This is what
        recovers a butterfly dictionary whose atoms come in an unknown order
        (see Notes).
    max_iter : int, default=10
        Maximum number of passes (epochs) over the samples.
    tol : float, default=1e-3
        Stop when an epoch reduces the relative error by less than ``tol``
        times its previous value; ``0`` runs ``max_iter`` epochs.
    batch_size : int, default=256
        Number of samples in each mini-batch (one dictionary update each).
        A value of at least ``n_samples`` gives a full-batch algorithm.
    shuffle : bool, default=True
        Shuffle the samples before each epoch.
    dict_init : ndarray of shape (n_components, n_features), default=None
        Initial dictionary (projected onto butterflies); ``None`` starts from
        the principal directions of ``X``.
    transform_algorithm : {"omp", "lasso_lars", "lasso_cd", "lars", \
"threshold"}, default="omp"
        Sparse coder, in ``fit`` and ``transform``, as in
        :func:`sklearn.decomposition.sparse_encode`.
    transform_n_nonzero_coefs : int, default=None
        Nonzeros per code for ``"omp"`` and ``"lars"``; ``None`` means
        ``min(max(n_features // 10, 1), n_components)``.
    transform_alpha : float, default=None
        Penalty for ``"lasso_lars"`` and ``"lasso_cd"`` (of the L1 norm, as
        in :func:`~sklearn.decomposition.sparse_encode`) and threshold for
        ``"threshold"``; ``None`` means 1 (and, for ``"omp"``, a tolerance
        on the squared residual overriding ``transform_n_nonzero_coefs``
        when given).
    transform_max_iter : int, default=1000
        Maximum number of iterations of ``"lasso_lars"`` and ``"lasso_cd"``.
    n_jobs : int, default=None
        Number of joblib jobs of ``sparse_encode`` (the coders other than
        OMP with a number of nonzeros) and of the projections.
    verbose : int, default=0
        Print, after each epoch when positive, its phase (free or
        butterfly), its relative error, the atoms resampled and the time.
    random_state : int, RandomState instance or None, default=None
        Seed of the shuffling, of the resampled atoms, of the ordering
        searches and of the random atoms completing the
        initial dictionary.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The atoms (unit norm), the dense matrix of ``butterfly_``.
    butterfly_ : ButterflyMatrix of shape (n_components, n_features)
        The dictionary as a fast operator: ``butterfly_ @ x`` correlates a
        sample with every atom, ``butterfly_.T @ c`` synthesises.
    error_ : ndarray of shape (n_iter_,)
        Relative error :math:`\\|X_b - C_b D\\|_F / \\|X_b\\|_F` of each
        epoch, over its mini-batches coded with the dictionary of the time;
        ``partial_fit`` appends the error of its mini-batch.
    n_iter_ : int
        Number of epochs run by ``fit`` (0 after ``partial_fit`` alone).
    n_steps_ : int
        Number of mini-batches processed (by ``fit`` and ``partial_fit``).
    n_components_ : int
        Number of atoms.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features, when ``X`` has string column names.

    See Also
    --------
    sklearn.decomposition.MiniBatchDictionaryLearning : A dense dictionary.
    ButterflyFactorizer : Approximate a given matrix by a butterfly.

    Notes
    -----
    The algorithm is the online dictionary learning of Mairal et al. [2]_,
    with the dictionary constrained to butterflies as in the FAµST
    dictionaries of Le Magoarou and Gribonval [1]_. Each mini-batch
    :math:`X_b` is coded with the current dictionary (``sparse_encode`` with
    the Gram matrix of the atoms and the correlations :math:`D X_b^\\top`
    precomputed, the latter by the operator), and the statistics
    :math:`A \\leftarrow \\beta A + C_b^\\top C_b / |b|`,
    :math:`B \\leftarrow \\beta B + C_b^\\top X_b / |b|` are accumulated with
    the forgetting factor :math:`\\beta` of [2]_. :math:`D` should then
    minimise the surrogate
    :math:`\\tfrac12 \\mathrm{tr}(D^\\top A D) - \\mathrm{tr}(D^\\top B)` over
    butterflies. The update takes the proximal least-squares step

    .. math:: T = (A + \\lambda I)^{-1} (B + \\lambda D),
        \\qquad \\lambda = 0.1\\, \\mathrm{tr}(A) / k,

    which stays close to the current dictionary, then projects :math:`T`
    onto butterflies by the hierarchical factorization (quasi-optimal in
    Frobenius norm, exact on butterflies, ``O(N**2)``) and renormalises the
    atoms (a row scaling of :math:`F_1`). This replaces the per-factor
    projected gradient (PALM) of [1]_ by one projection per step: simpler,
    and on image patches it denoised better than plain projected gradient
    steps. The projection is not a minimiser of the surrogate, so its
    decrease is not guaranteed; the per-epoch error is monitored instead
    (``tol``). Atoms that no code of an epoch used are replaced, at its last
    mini-batch, by random samples of it (normalised, with 1 % noise), as
    scikit-learn does. ``partial_fit`` is one step of this loop: the
    statistics carry over from call to call.

    Sparse coding computes the correlations :math:`D X^\top` with the
    operator once ``n_features >= 256`` and the butterfly stores at most a
    quarter of the dense values; below, scikit-learn's route (one BLAS
    product) is faster: on one thread the operator runs at 0.3x the speed of
    ``D @ X.T`` with 64 features, 1.3x with 256, 3.5x to 5x with 1024. OMP
    with ``transform_n_nonzero_coefs`` then runs on the Gram matrix of the
    atoms vectorised over samples (Batch-OMP [3]_, the same codes as
    :func:`~sklearn.linear_model.orthogonal_mp_gram`, whose per-sample loop
    copies the Gram matrix for every sample and would dominate the cost);
    ``"lasso_lars"``, ``"lars"``, ``"threshold"`` and OMP with a residual
    tolerance (``transform_alpha``) run in
    :func:`~sklearn.decomposition.sparse_encode` with the Gram matrix and the
    correlations precomputed. ``"lasso_cd"`` runs in ``sparse_encode`` with
    the Gram matrix only: scikit-learn's :class:`~sklearn.linear_model.Lasso`
    takes no precomputed correlations and computes them by one dense
    product, 0.1 % to 0.2 % of its time at 256 and 1024 features (300
    samples, one thread): the coordinate descent of each sample dominates,
    and the operator would gain nothing there.

    Samples whose largest magnitude lies outside the fourth root of the
    floating-point range (``1e-77`` to ``1e77`` in float64) are scaled once
    by a power of two (exact) in ``fit`` and ``transform``, the codes scaled
    back: squared norms neither over- nor underflow, and the dictionary is
    that of the unscaled samples.

    The butterfly constraint fixes an order of the atoms: a butterfly with
    permuted rows is in general not a butterfly with the same supports, and
    the default initialisation (principal directions) does not know it.
    With ``row_permutation="learn"`` the order is learned: the first half of
    the epochs run without the constraint (free atoms find the directions
    of the data), then the ordering under which that dictionary is closest
    to a butterfly is found (:func:`butterfly_factorize`), and the constraint
    with that ordering is imposed (warm-started projections). In the tests,
    random butterflies with well-conditioned blocks whose atoms were
    shuffled are recovered from the default start (all atoms of orthogonal
    butterflies of 16 and 32 atoms, at least 94 % of the atoms of
    butterflies with block singular values in [0.5, 1], in 40 epochs); with
    ``row_permutation=None`` none are. Random butterflies with Gaussian
    blocks have nearly collinear atoms, which no learner tells apart.

    On image patches (``benchmarks/bench_dictionary.py``: 16 x 16 patches,
    256 atoms, noise of 0.1, 8 nonzeros, 10 epochs), ``n_factors=2`` at
    ranks 1 and 4, ``n_factors=4`` and ``8`` at rank 2 denoised within 0.1 dB
    of :class:`~sklearn.decomposition.MiniBatchDictionaryLearning` with
    2000 training patches (two of them above it) and within 0.19 to 0.31 dB
    with 1000; with 500 they lost 0.52 to 0.66 dB. The classic butterfly of
    the default (rank 1, 8 factors, 4096 values) lost 0.9 to 1 dB at every
    size: choose ``n_factors=2`` or ``rank=2`` for patches. Butterflies need
    more epochs than a dense dictionary (at 3 epochs the gaps were 0.1 to
    1.3 dB; the dense dictionary had converged).

    References
    ----------
    .. [1] L. Le Magoarou, R. Gribonval, "Flexible multilayer sparse
       approximations of matrices and applications", IEEE Journal of
       Selected Topics in Signal Processing 10(4), 2016,
       doi:10.1109/JSTSP.2016.2543461.
    .. [2] J. Mairal, F. Bach, J. Ponce, G. Sapiro, "Online dictionary
       learning for sparse coding", ICML 2009; and "Online learning for
       matrix factorization and sparse coding", JMLR 11, 2010.
    .. [3] R. Rubinstein, M. Zibulevsky, M. Elad, "Efficient implementation
       of the K-SVD algorithm using batch orthogonal matching pursuit",
       Technical report CS-2008-08, Technion, 2008.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import ButterflyDictionaryLearning
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 16)) * (rng.random((200, 16)) < 0.15)
    >>> est = ButterflyDictionaryLearning(
    ...     transform_n_nonzero_coefs=3, max_iter=5, tol=0, random_state=0
    ... ).fit(X)
    >>> est.components_.shape, est.butterfly_.n_factors
    ((16, 16), 4)
    >>> codes = est.transform(X)
    >>> int(np.count_nonzero(codes, axis=1).max())
    3
    >>> est.inverse_transform(codes).shape
    (200, 16)
    >>> est.partial_fit(X[:50]).n_steps_  # one more mini-batch
    6
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "n_factors": [Interval(Integral, 1, None, closed="left"), None],
        "rank": [Interval(Integral, 1, None, closed="left")],
        "permutation": [None, str, list, tuple, np.ndarray],
        "row_permutation": [None, str, list, tuple, np.ndarray],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "dict_init": [np.ndarray, None],
        "transform_algorithm": [StrOptions(set(TRANSFORM_ALGORITHMS))],
        "transform_n_nonzero_coefs": [Interval(Integral, 1, None, closed="left"), None],
        "transform_alpha": [Interval(Real, 0, None, closed="left"), None],
        "transform_max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components=None,
        *,
        n_factors=None,
        rank=1,
        permutation=None,
        row_permutation=None,
        max_iter=10,
        tol=1e-3,
        batch_size=256,
        shuffle=True,
        dict_init=None,
        transform_algorithm="omp",
        transform_n_nonzero_coefs=None,
        transform_alpha=None,
        transform_max_iter=1000,
        n_jobs=None,
        verbose=0,
        random_state=None,
    ):
        self.n_components = n_components
        self.n_factors = n_factors
        self.rank = rank
        self.permutation = permutation
        self.row_permutation = row_permutation
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.dict_init = dict_init
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.transform_max_iter = transform_max_iter
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state

    def _coder(self):
        return {
            "algorithm": self.transform_algorithm,
            "n_nonzero_coefs": self.transform_n_nonzero_coefs,
            "alpha": self.transform_alpha,
            "max_iter": self.transform_max_iter,
            "n_jobs": self.n_jobs,
        }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the butterfly dictionary from the samples ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples (real).
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        random_state = check_random_state(self.random_state)
        arch = self._architecture(X, random_state)
        self._exponent = scaling_exponent(X)
        X = scale_pow2(X, -self._exponent)
        state, errors, n_steps, converged = learn_online(
            X,
            self._initial_dictionary(X, random_state),
            arch=arch,
            coder=self._coder(),
            max_iter=self.max_iter,
            tol=self.tol,
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            random_state=random_state,
            verbose=self.verbose,
        )
        if not converged and self.tol > 0:
            warnings.warn(
                f"ButterflyDictionaryLearning did not converge: max_iter="
                f"{self.max_iter} epochs reached with the last relative "
                f"decrease of the error above tol={self.tol}. Increase "
                "max_iter or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._set_state(state, arch, random_state)
        self.error_ = errors
        self.n_iter_ = len(errors)
        self.n_steps_ = n_steps
        warn_if_poor_fit(errors[-1], state.B.nnz, state.D.size, POOR_FIT_HINT)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Update the dictionary with one mini-batch ``X``.

        The first call initialises the dictionary from ``X`` (or
        ``dict_init``); each call codes ``X`` with the current dictionary,
        adds its statistics to those of the previous calls (with the
        forgetting factor of ``fit``, for mini-batches of ``batch_size``)
        and takes one projected dictionary step. After ``fit``, it continues
        from the fitted dictionary and statistics. The orderings must be
        fixed (``None``, a permutation or its name): a searched ordering
        (``"auto"``, ``"learn"``, candidates) is chosen after epochs without
        the constraint, which only ``fit`` runs. Samples are scaled by the
        power of two of the first batch (see ``fit``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A mini-batch of samples (real).
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The updated estimator.
        """
        first = not hasattr(self, "_state")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=first)
        if first:
            random_state = check_random_state(self.random_state)
            arch = self._architecture(X, random_state)
            if arch.searched:
                raise ValueError(
                    "partial_fit needs fixed orderings, got permutation="
                    f"{self.permutation!r} and row_permutation="
                    f"{self.row_permutation!r}: a searched ordering is chosen "
                    "by fit after its epochs without the constraint. Pass "
                    "None, a permutation or its name, or call fit first."
                )
            self._exponent = scaling_exponent(X)
            X = scale_pow2(X, -self._exponent)
            D = self._initial_dictionary(X, random_state)
            self._set_state(OnlineState.start(*arch.project(D)), arch, random_state)
            self.error_, self.n_iter_, self.n_steps_ = np.zeros(0), 0, 0
        else:
            X = scale_pow2(X, -self._exponent)
        D = self._state.D
        codes, _ = online_step(
            self._state, X, self._arch, self._coder(), self.batch_size,
            self._random_state, resample=False,
        )  # fmt: skip
        self.butterfly_, self.components_ = self._state.B, self._state.D
        self.error_ = np.append(self.error_, frobenius_errors(X, codes @ D)[2])
        self.n_steps_ += 1
        return self

    def _architecture(self, X, random_state):
        """The validated butterfly set of the dictionary (orderings checked)."""
        n_components = X.shape[1] if self.n_components is None else self.n_components
        arch, _, _ = plan_factorization(
            (n_components, X.shape[1]),
            self.n_factors,
            self.rank,
            "balanced",
            self.permutation,
            "zeros",
            self.row_permutation,
        )
        m, n = arch.padded_shape
        learned = [
            name
            for name, spec in (
                ("permutation", self.permutation),
                ("row_permutation", self.row_permutation),
            )
            if isinstance(spec, str) and spec == "learn"
        ]
        if learned and (m != n or m & (m - 1)):
            raise ValueError(
                f"{learned[0]}='learn' needs a square dictionary of power-of-two "
                f"size (after padding), got n_components={n_components}, "
                f"n_features={X.shape[1]} (padded {m} x {n}); use 'auto' or "
                "n_components=n_features."
            )
        return Architecture(
            self.n_factors,
            self.rank,
            self.permutation,
            self.row_permutation,
            self.n_jobs,
            random_state,
        )

    def _initial_dictionary(self, X, random_state):
        n_features = X.shape[1]
        n_components = n_features if self.n_components is None else self.n_components
        if self.dict_init is None:
            return initial_dictionary(X, n_components, random_state)
        D = check_matrix(self.dict_init, name="dict_init", allow_complex=False)
        if D.shape != (n_components, n_features):
            raise ValueError(
                f"dict_init must have shape (n_components, n_features) = "
                f"({n_components}, {n_features}), got shape={D.shape}."
            )
        return D.astype(X.dtype)

    def _set_state(self, state, arch, random_state):
        self._state, self._arch, self._random_state = state, arch, random_state
        self.butterfly_, self.components_ = state.B, state.D
        self.n_components_ = state.D.shape[0]

    def transform(self, X):
        """Sparse codes of the samples over the learned atoms.

        Parameters
        ----------
        X : array-like of shape (n_samples_new, n_features)
            Samples.

        Returns
        -------
        ndarray of shape (n_samples_new, n_components)
            The codes of ``sparse_encode(X, components_, ...)`` with the
            transform parameters, the correlations computed by the operator.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return encode(X, self.butterfly_, self.components_, self._coder())

    def inverse_transform(self, X):
        """Synthesise samples from codes: ``X @ components_``.

        Parameters
        ----------
        X : array-like of shape (n_samples_new, n_components)
            Codes.

        Returns
        -------
        ndarray of shape (n_samples_new, n_features)
            The samples, computed with the operator's transpose.
        """
        check_is_fitted(self)
        X = check_matrix(X, name="X", allow_complex=False)
        if X.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {X.shape[1]} features, but inverse_transform expects "
                f"n_components={self.n_components_}."
            )
        dtype = np.result_type(X.dtype, self.butterfly_.dtype)
        return np.asarray(self.butterfly_.rmatmat(X.T.astype(dtype))).T

    @property
    def _n_features_out(self):
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
