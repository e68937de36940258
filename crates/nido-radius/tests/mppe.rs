//! MS-MPPE-Send-Key / MS-MPPE-Recv-Key (RFC 2548 §2.4.2, §2.4.3) and the
//! MSK split (Recv = MSK[0..32], Send = MSK[32..64]).

use nido_radius::mppe::{MICROSOFT_VENDOR_ID, MppeError, MppeKey, decrypt_key, encrypt_key};
use nido_radius::{
    Code, DecodeError, Packet, RequestInfo, Secret, attr, verify_request, verify_response,
};

fn secret() -> Secret {
    Secret::new(b"testing123").expect("secret")
}

const RA: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
const SALTS: [u16; 5] = [0x8000, 0x8001, 0x9a5c, 0xabcd, 0xffff];

fn key32() -> Vec<u8> {
    (0..32).collect()
}

/// Not a published vector: the same formula computed independently with
/// Python's hashlib (key 00..1f, secret "testing123", Request Authenticator
/// 01..10, salt 0x8123, MS-MPPE-Send-Key). The independent check of the
/// construction and the MSK split is the interop run with hostapd's
/// eapol_test.
#[test]
fn cross_computed_vector() {
    let v = encrypt_key(MppeKey::Send, &key32(), &secret(), &RA, 0x8123).expect("encrypts");
    assert_eq!(
        hex::encode(&v),
        "00000137103481236ea30e0fb480ea1cfe7a4f6263d6b8cf09e41b346d2ea72eae51dedb\
         512beada9ee19cd729374a4ea90a707e010e061c"
    );
}

#[test]
fn round_trip_with_several_salts() {
    for kind in [MppeKey::Send, MppeKey::Recv] {
        let mut seen = Vec::new();
        for salt in SALTS {
            let v = encrypt_key(kind, &key32(), &secret(), &RA, salt).expect("encrypts");
            assert_eq!(v.len(), 56);
            assert_eq!(v[..6], [0, 0, 1, 0x37, kind.vendor_type(), 52]);
            assert_eq!(v[6..8], salt.to_be_bytes());
            assert!(
                !seen.contains(&v[8..].to_vec()),
                "salt changes the ciphertext"
            );
            seen.push(v[8..].to_vec());
            let k = decrypt_key(kind, &v, &secret(), &RA).expect("decrypts");
            assert_eq!(*k, key32());
        }
    }
    for len in [0usize, 1, 15, 16, 31, 33, 64, 239] {
        let key = vec![0x5a; len];
        let v = encrypt_key(MppeKey::Recv, &key, &secret(), &RA, 0x8421).expect("encrypts");
        assert_eq!(
            *decrypt_key(MppeKey::Recv, &v, &secret(), &RA).expect("decrypts"),
            key
        );
    }
}

/// A wrong secret (or Request Authenticator) is not detected by an integrity
/// check: the key-length octet decrypts to a random value, refused when it
/// exceeds the 47 octets after it (about 81% of the time for 32-octet keys),
/// otherwise a *different* key comes out. `Packet::msk` also demands 32.
#[test]
fn wrong_secret_fails_the_length_check_or_gives_another_key() {
    let (mut refused, mut different) = (0, 0);
    for i in 0..200u16 {
        let v = encrypt_key(MppeKey::Send, &key32(), &secret(), &RA, 0x8000 | i).expect("encrypts");
        let wrong = Secret::new(format!("wrong{i}").as_bytes()).expect("secret");
        match decrypt_key(MppeKey::Send, &v, &wrong, &RA) {
            Err(MppeError::KeyLength { available: 47, .. }) => refused += 1,
            Ok(k) => {
                assert_ne!(*k, key32());
                different += 1;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
        let mut ra = RA;
        ra[0] ^= 1;
        if let Ok(k) = decrypt_key(MppeKey::Send, &v, &secret(), &ra) {
            assert_ne!(*k, key32());
        }
    }
    assert_eq!(refused + different, 200);
    assert!(refused > 120, "{refused} of 200 refused");
}

#[test]
fn salt_high_bit_required() {
    assert_eq!(
        encrypt_key(MppeKey::Send, &key32(), &secret(), &RA, 0x7fff),
        Err(MppeError::SaltHighBitClear { salt: 0x7fff })
    );
    let mut v = encrypt_key(MppeKey::Send, &key32(), &secret(), &RA, 0x8001).expect("encrypts");
    v[6] &= 0x7f;
    assert_eq!(
        decrypt_key(MppeKey::Send, &v, &secret(), &RA),
        Err(MppeError::SaltHighBitClear { salt: 0x0001 })
    );
}

#[test]
fn malformed_values_refused() {
    let v = encrypt_key(MppeKey::Recv, &key32(), &secret(), &RA, 0x8001).expect("encrypts");
    let d = |x: &[u8]| decrypt_key(MppeKey::Recv, x, &secret(), &RA);
    assert_eq!(
        d(&v[..3]).err(),
        Some(MppeError::Decode(DecodeError::Truncated {
            field: "Vendor-Id",
            offset: 0,
            needed: 4,
            available: 3
        }))
    );
    assert!(matches!(
        d(&v[..40]),
        Err(MppeError::Decode(DecodeError::Truncated {
            field: "MPPE String",
            offset: 8,
            ..
        }))
    ));
    let mut long = v.clone();
    long.push(0);
    assert_eq!(
        d(&long).err(),
        Some(MppeError::Decode(DecodeError::Trailing {
            field: "Vendor-Specific",
            offset: 56,
            count: 1
        }))
    );
    let mut other_vendor = v.clone();
    other_vendor[3] = 0x38;
    assert_eq!(
        d(&other_vendor).err(),
        Some(MppeError::NotMicrosoft { vendor_id: 312 })
    );
    assert_eq!(
        decrypt_key(MppeKey::Send, &v, &secret(), &RA).err(),
        Some(MppeError::WrongVendorType {
            expected: 16,
            found: 17
        })
    );
    let mut short_len = v.clone();
    short_len[5] = 3;
    assert!(matches!(
        d(&short_len),
        Err(MppeError::Decode(DecodeError::BadLength {
            field: "Vendor-Length",
            offset: 5,
            ..
        }))
    ));
    let mut odd = v[..50].to_vec();
    odd[5] = 46;
    assert_eq!(d(&odd).err(), Some(MppeError::StringLength { length: 42 }));
    let mut empty = v[..8].to_vec();
    empty[5] = 4;
    assert_eq!(d(&empty).err(), Some(MppeError::StringLength { length: 0 }));
}

fn msk() -> [u8; 64] {
    std::array::from_fn(|i| i as u8 ^ 0xa5)
}

#[test]
fn msk_in_an_access_accept() {
    // The client's request, the server's Accept with the MSK, end to end.
    let mut req = Packet::new(Code::AccessRequest, 9, [0x11; 16]);
    req.push_eap_message(&[2, 1, 0, 6, 13, 0]);
    let sent = req.encode_request(&secret()).expect("signs");
    let got = verify_request(&sent, &secret()).expect("verifies");

    let mut accept = Packet::new(Code::AccessAccept, got.identifier, [0; 16]);
    accept.push_eap_message(&[3, 1, 0, 4]);
    accept
        .push_msk(&msk(), &secret(), &got.authenticator, [0x8001, 0x8002])
        .expect("msk");
    let reply = accept
        .encode_response(&secret(), &got.authenticator)
        .expect("signs");

    let info = RequestInfo::from_octets(&sent).expect("header");
    let p = verify_response(&reply, &secret(), &info).expect("verifies");
    let vsas: Vec<&[u8]> = p.attrs(attr::VENDOR_SPECIFIC).collect();
    assert_eq!(vsas.len(), 2);
    assert_eq!(vsas[0][..4], MICROSOFT_VENDOR_ID.to_be_bytes());
    // Recv first, carrying MSK[0..32]; Send carries MSK[32..64].
    let recv = decrypt_key(MppeKey::Recv, vsas[0], &secret(), &info.authenticator).expect("recv");
    let send = decrypt_key(MppeKey::Send, vsas[1], &secret(), &info.authenticator).expect("send");
    assert_eq!(recv.as_slice(), &msk()[..32]);
    assert_eq!(send.as_slice(), &msk()[32..]);
    let got = p
        .msk(&secret(), &info.authenticator)
        .expect("ok")
        .expect("present");
    assert_eq!(*got, msk());

    // Wrong secret: refused (key length) or a wrong-sized half, almost surely.
    assert!(
        p.msk(&Secret::new(b"nope").expect("s"), &info.authenticator)
            .is_err()
    );
}

#[test]
fn msk_assembly_errors() {
    let mut p = Packet::new(Code::AccessAccept, 1, [0; 16]);
    assert_eq!(p.msk(&secret(), &RA), Ok(None));
    assert_eq!(
        p.push_msk(&msk(), &secret(), &RA, [0x8001, 0x8001]),
        Err(MppeError::SameSalt)
    );
    assert_eq!(
        p.push_msk(&msk(), &secret(), &RA, [0x8001, 0x0002]),
        Err(MppeError::SaltHighBitClear { salt: 2 })
    );
    assert!(p.attributes.is_empty());

    let send = encrypt_key(MppeKey::Send, &[1; 32], &secret(), &RA, 0x8001).expect("encrypts");
    p.push(attr::VENDOR_SPECIFIC, &send).expect("push");
    assert_eq!(
        p.msk(&secret(), &RA),
        Err(MppeError::Missing(MppeKey::Recv))
    );
    p.push(attr::VENDOR_SPECIFIC, &send).expect("push");
    assert_eq!(
        p.msk(&secret(), &RA),
        Err(MppeError::Duplicate(MppeKey::Send))
    );

    let mut q = Packet::new(Code::AccessAccept, 1, [0; 16]);
    let recv = encrypt_key(MppeKey::Recv, &[1; 16], &secret(), &RA, 0x8002).expect("encrypts");
    q.push(attr::VENDOR_SPECIFIC, &recv).expect("push");
    assert_eq!(
        q.msk(&secret(), &RA),
        Err(MppeError::Missing(MppeKey::Send))
    );
    q.push(attr::VENDOR_SPECIFIC, &send).expect("push");
    // Another vendor's VSA is ignored.
    q.push(attr::VENDOR_SPECIFIC, &[0, 0, 0, 9, 16, 3, 0])
        .expect("push");
    assert_eq!(
        q.msk(&secret(), &RA),
        Err(MppeError::MskHalfLength {
            kind: MppeKey::Recv,
            length: 16
        })
    );
}

#[test]
fn debug_output_hides_secrets() {
    let s = secret();
    let out = format!("{s:?}");
    assert!(!out.contains("testing123"));
    assert!(out.contains("[redacted]"));
}
