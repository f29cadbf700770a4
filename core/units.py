"""Units, declared once. Inside: LAMMPS ``units metal`` (Å, ps, eV, K, bar); reports: D in cm²/s, Ea in eV."""

#: 1 Å²/ps in cm²/s
A2_PER_PS_TO_CM2_PER_S = 1e-4
#: Boltzmann's constant in eV/K (CODATA 2018)
K_B_EV_PER_K = 8.617333262e-5
#: 1 eV/Å³ in bar (LAMMPS metal pressure unit)
BAR_PER_EV_A3 = 1.602176634e6
#: 1 fs in ps
PS_PER_FS = 1e-3

UNITS = {"length": "Å", "time": "ps", "energy": "eV", "temperature": "K", "pressure": "bar",
         "diffusivity": "cm^2/s", "activation_energy": "eV"}
