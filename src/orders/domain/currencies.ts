// ISO 4217 alphabetic codes of the currencies in circulation (list one, as of 2026),
// without the fund codes (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW), precious metals (XAU,
// XAG, XPD, XPT), SDR and supranational units (XDR, XSU, XUA) and the test and "no currency"
// codes (XTS, XXX): an order is priced in money someone can pay with.
// Withdrawn codes are left out on purpose: ANG (replaced by XCG, 2025), BGN (Bulgaria joined the
// euro on 2026-01-01), CUC, HRK, SLL, VEF, ZWL. Update this list with ISO 4217 amendments.
export const ACTIVE_CURRENCIES: ReadonlySet<string> = new Set(
  [
    'AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND BOB BRL BSD BTN',
    'BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB',
    'EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR',
    'ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD',
    'MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR',
    'PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE',
    'SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU',
    'UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG',
  ]
    .join(' ')
    .split(' '),
);
